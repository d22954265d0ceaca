"""The Mistral provider, through the official ``mistralai`` SDK (``client.py``, ``batch.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...costs.estimate import TokenCalibration
from ...costs.prices import CataloguePrices
from ..base import BatchBackend, Provider, ProviderSpec

if TYPE_CHECKING:
    from ...settings import Settings

KEY_VARIABLES = ("MISTRAL_API_KEY",)


class MistralSpec(ProviderSpec):
    name = "mistral"
    key_variables = KEY_VARIABLES
    api_slots = 1
    prices = CataloguePrices("mistral")  # Mistral's list prices in genai-prices (batch: half)
    calibration = TokenCalibration(
        chars_per_token=4.0,
        source="no published figure; the common four characters per token, not measured for Mistral",
    )

    def model(self, settings: Settings) -> str:
        return settings.mistral_model

    def fingerprint(self, settings: Settings) -> dict[str, Any]:
        return {"temperature": settings.temperature}

    def make(self, settings: Settings) -> Provider:
        from .client import MistralProvider

        return MistralProvider.from_settings(settings)

    def make_batch_backend(self, settings: Settings) -> BatchBackend:
        from .batch import MistralBatchBackend

        return MistralBatchBackend(settings)


SPEC = MistralSpec()
