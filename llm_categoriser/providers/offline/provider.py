"""The offline provider and its batch stand-in: answers from the rules in ``rules.py``.

It answers with the same JSON text an LLM would, so its answers go through the same parsing
and validation; its rows say ``offline`` in the provider column.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import NamedTuple

from ...records import PlannedBatch, PlannedFlag
from ..base import Answer, Created, Request, Status
from . import MODEL, rules


@cache
def rules_digest() -> str:
    """Part of every offline batch fingerprint: new rules answer again."""
    return hashlib.sha256(Path(rules.__file__).read_bytes()).hexdigest()[:16]


class FlagSeen(NamedTuple):
    """What the rules read of a planned flag (``rules.FlagText``): its fields as the plan wrote
    them, without building a report ``Issue`` for each flag of every request."""

    issue: str
    context: str
    rule_id: str
    type: str
    message: str
    suggestions: str

    @classmethod
    def of(cls, flag: PlannedFlag) -> FlagSeen:
        return cls(
            flag.issue, flag.highlighted_context, flag.rule_id, flag.type, flag.message, flag.suggestions
        )


class OfflineProvider:
    name = "offline"
    model = MODEL

    def generate(self, request: Request) -> Answer:
        batch: PlannedBatch = request.batch
        pages = {p.page: p.text for p in batch.pages}
        answers = []
        for flag in batch.flags:
            if flag.local_id not in request.local_ids:
                continue
            seen = FlagSeen.of(flag)
            category, confidence, reason = rules.classify(seen, pages.get(flag.context_page), flag.hints)
            answers.append(
                {
                    "issue_id": flag.local_id,
                    "error_category": str(category),
                    "confidence_score": confidence,
                    "reasoning": reason,
                }
            )
        text = json.dumps(answers, ensure_ascii=False)
        chars = len(request.system) + len(request.user)
        return Answer(text=text, input_tokens=chars // 4, output_tokens=len(text) // 4)


class OfflineBatchBackend:
    """Jobs complete on the next fetch; answers come from the offline rules."""

    provider = "offline"

    def __init__(self) -> None:
        self._inner = OfflineProvider()
        self.model = self._inner.model

    @property
    def sync_provider(self) -> OfflineProvider:
        return self._inner

    def find_live(self, display_name: str) -> str | None:
        return None

    def create(self, display_name: str, requests: list[Request]) -> Created:
        return Created(f"offline/{display_name}", "local", 0, adopted=False)

    def status(self, name: str) -> Status:
        return Status("SUCCEEDED")

    def results(self, name: str, requests: list[Request]) -> dict[str, Answer]:
        return {r.key: self._inner.generate(r) for r in requests}

    def cancel(self, name: str) -> None:
        return None
