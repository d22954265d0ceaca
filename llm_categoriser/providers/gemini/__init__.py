"""The Gemini provider, through the official ``google-genai`` SDK (``client.py``, ``batch.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...costs.estimate import TokenCalibration
from ...costs.prices import CataloguePrices
from ..base import BatchBackend, Provider, ProviderSpec

if TYPE_CHECKING:
    from ...settings import Settings

KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


class GeminiSpec(ProviderSpec):
    name = "gemini"
    key_variables = KEY_VARIABLES
    api_slots = 1
    prices = CataloguePrices("google")  # the Gemini API's list prices in genai-prices
    calibration = TokenCalibration(
        chars_per_token=4.0, source="Gemini API documentation: a token is about four characters"
    )

    def make(self, settings: Settings) -> Provider:
        from .client import GeminiProvider

        return GeminiProvider.from_settings(settings)

    def make_batch_backend(self, settings: Settings) -> BatchBackend:
        from .batch import GeminiBatchBackend

        return GeminiBatchBackend(settings)


SPEC = GeminiSpec()
