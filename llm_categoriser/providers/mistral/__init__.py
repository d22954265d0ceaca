"""The Mistral provider, through the official ``mistralai`` SDK (``client.py``, ``batch.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...costs.estimate import TokenCalibration
from ...costs.prices import CataloguePrices
from ..chat_completions import ChatCompletionsSpec

if TYPE_CHECKING:
    from ...settings import Settings
    from .batch import MistralBatchBackend

KEY_VARIABLES = ("MISTRAL_API_KEY",)


class MistralSpec(ChatCompletionsSpec):
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

    def backend_class(self) -> type[MistralBatchBackend]:
        from .batch import MistralBatchBackend

        return MistralBatchBackend


SPEC = MistralSpec()
