"""The Gemini provider, through the official ``google-genai`` SDK (``client.py``, ``batch.py``)."""

from __future__ import annotations

import importlib
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

    def prewarm(self) -> None:
        # google-genai's import (its types module builds hundreds of pydantic models) is most
        # of the CPU a process spends before its first Gemini request
        importlib.import_module(f"{__name__}.client")
        importlib.import_module("google.genai")

    def make(self, settings: Settings) -> Provider:
        from .client import GeminiProvider

        return GeminiProvider.from_settings(settings)

    def make_batch_backend(self, settings: Settings) -> BatchBackend:
        from .batch import GeminiBatchBackend

        return GeminiBatchBackend(settings)


SPEC = GeminiSpec()
