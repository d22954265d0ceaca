"""The Mistral provider, through the official ``mistralai`` SDK (``client.py``, ``batch.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..base import BatchBackend, Provider, ProviderSpec

if TYPE_CHECKING:
    from ...settings import Settings

KEY_VARIABLES = ("MISTRAL_API_KEY",)


class MistralSpec(ProviderSpec):
    name = "mistral"
    key_variables = KEY_VARIABLES
    api_slots = 1

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
