"""The offline provider: deterministic rules (``rules.py``), no network, no model download."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...costs.prices import NoCharge
from ..base import BatchBackend, Provider, ProviderSpec

if TYPE_CHECKING:
    from ...models import Issue
    from ...settings import Settings

MODEL = "offline-rules-v1"


class OfflineSpec(ProviderSpec):
    name = "offline"
    key_variables = ()
    api_slots = 0  # no remote calls: offline jobs are bounded by cores only
    runs_remotely = False
    answers_from_a_model = False  # rules: the cascade never learns from them
    prices = NoCharge("runs locally, no charge")

    def model(self, settings: Settings) -> str:
        return MODEL

    def fingerprint(self, settings: Settings) -> dict[str, Any]:
        from .provider import rules_digest

        return {"rules": rules_digest()}

    def document_hints(self, issue: Issue, document_text: str) -> dict[str, Any]:
        from . import rules

        return rules.document_hints(issue, document_text)

    def make(self, settings: Settings) -> Provider:
        from .provider import OfflineProvider

        return OfflineProvider()

    def make_batch_backend(self, settings: Settings) -> BatchBackend:
        from .provider import OfflineBatchBackend

        return OfflineBatchBackend()


SPEC = OfflineSpec()
