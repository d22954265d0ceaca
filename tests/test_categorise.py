"""Validation and retry, driven through our own Provider interface (not an SDK mock)."""

from __future__ import annotations

import json

from test_prompts import BATCH

from llm_categoriser.categorise import categorise_batch
from llm_categoriser.providers.base import Answer
from llm_categoriser.providers.offline import OfflineProvider

BATCH = {
    **BATCH,
    "fingerprint": "f",
    "issues": [{**i, "key": f"key{i['local_id']}"} for i in BATCH["issues"]],
}


class Scripted:
    name = "scripted"
    model = "m"

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def generate(self, request):
        self.requests.append(request)
        item = self.answers.pop(0)
        return item if isinstance(item, Answer) else Answer(text=item)


def ok(*ids, category="FALSE_POSITIVE"):
    return json.dumps(
        [
            {"issue_id": i, "error_category": category, "confidence_score": 70, "reasoning": "Fine."}
            for i in ids
        ]
    )


def test_missing_answers_are_retried_alone():
    provider = Scripted([ok(0), ok(1)])
    result = categorise_batch(BATCH, provider, max_retries=2)
    assert {k: v.status for k, v in result.items.items()} == {"key0": "ok", "key1": "ok"}
    assert result.requests == 2
    assert provider.requests[1].local_ids == {1}
    assert "a\\|b" not in provider.requests[1].user


def test_what_still_fails_is_recorded_not_dropped():
    provider = Scripted([ok(0), "garbage", Answer(text=None, error="HTTP 503 after 6 attempts")])
    result = categorise_batch(BATCH, provider, max_retries=2)
    assert result.items["key0"].status == "ok"
    failed = result.items["key1"]
    assert failed.status == "failed"
    assert "HTTP 503" in failed.error and "3 attempt" in failed.error


def test_repaired_answers_are_marked():
    provider = Scripted(["```json\n" + ok(0, 1) + "\n```"])
    result = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in result.items.values()} == {"repaired"}
    assert result.items["key0"].notes == ["code fence removed"]


def test_offline_provider_goes_through_validation():
    result = categorise_batch(BATCH, OfflineProvider(), max_retries=0)
    assert set(result.items) == {"key0", "key1"}
    assert all(v.status == "ok" and v.error_category for v in result.items.values())
    assert result.provider == "offline"
