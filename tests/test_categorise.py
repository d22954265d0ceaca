"""Validation and retry, driven through our own Provider interface (not an SDK mock)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from test_prompts import BATCH

from llm_categoriser.answers import load_answer
from llm_categoriser.categorise import categorise_batch, categorise_part
from llm_categoriser.costs.ledger import SpendLedger, SpendRecord
from llm_categoriser.costs.meter import SpendMeter
from llm_categoriser.costs.prices import CataloguePrices
from llm_categoriser.layout import Layout
from llm_categoriser.limits import Limits, RequestLimiter
from llm_categoriser.providers.base import Answer
from llm_categoriser.providers.offline.provider import OfflineProvider
from llm_categoriser.records import PlannedBatch

BATCH = BATCH.model_copy(update={"fingerprint": "f"})


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


# A document part: answers kept per batch fingerprint and reused while it holds


def _part(n: int) -> list[PlannedBatch]:
    return [BATCH.model_copy(update={"batch_id": f"b{i}", "fingerprint": f"f{i}"}) for i in range(n)]


def _data(tmp_path) -> Layout:
    return Layout("Documents", str(tmp_path))


def _cached(tmp_path) -> list[str]:
    return sorted(p.stem for p in Path(_data(tmp_path).cache_dir).rglob("*.json"))


def test_a_part_saves_each_answer_and_reuses_it_while_the_fingerprint_holds(tmp_path):
    provider = Scripted([ok(0, 1)] * 3)
    results, reused = categorise_part(_part(3), lambda: provider, _data(tmp_path), max_retries=0)
    assert reused == 0 and len(provider.requests) == 3
    assert [r.batch_id for r in results] == ["b0", "b1", "b2"]
    assert _cached(tmp_path) == ["f0", "f1", "f2"]

    batches = _part(3)
    batches[1].fingerprint = "changed"
    provider = Scripted([ok(0, 1, category="SPELLING_ERROR")])
    again, reused = categorise_part(batches, lambda: provider, _data(tmp_path), max_retries=0)
    assert reused == 2
    assert [req.key for req in provider.requests] == ["b1#1"]
    assert again[0] == results[0].as_reused() and again[2] == results[2].as_reused()
    assert again[0].spend().requests_reused == 1 and again[0].spend().requests_sent == 0
    assert {i.error_category for i in again[1].items.values()} == {"SPELLING_ERROR"}
    assert load_answer(_data(tmp_path), "changed") == again[1]


def test_a_part_answered_entirely_from_the_cache_makes_no_provider(tmp_path):
    categorise_part(_part(2), lambda: Scripted([ok(0, 1)] * 2), _data(tmp_path), max_retries=0)

    def no_provider():
        raise AssertionError("the provider was made although every answer was saved")

    results, reused = categorise_part(_part(2), no_provider, _data(tmp_path), max_retries=0)
    assert reused == 2 and len(results) == 2


def test_failed_flags_unreadable_answers_and_reuse_off_are_asked_again(tmp_path, caplog):
    failing = Scripted([Answer(text=None, error="HTTP 503 after 6 attempts"), ok(0, 1)])
    first, _ = categorise_part(_part(2), lambda: failing, _data(tmp_path), max_retries=0)
    assert {i.status for i in first[0].items.values()} == {"failed"}
    assert _cached(tmp_path) == ["f1"]  # an answer with a failed flag is not kept

    Path(_data(tmp_path).cached_answer("f1")).write_text("{not json", encoding="utf-8")
    provider = Scripted([ok(0, 1)] * 2)
    again, reused = categorise_part(_part(2), lambda: provider, _data(tmp_path), max_retries=0)
    assert reused == 0 and [r.key for r in provider.requests] == ["b0#1", "b1#1"]
    assert all(i.status == "ok" for r in again for i in r.items.values())
    assert "is unreadable" in caplog.text

    provider = Scripted([ok(0, 1)] * 2)
    _, reused = categorise_part(_part(2), lambda: provider, _data(tmp_path), max_retries=0, reuse=False)
    assert reused == 0 and len(provider.requests) == 2


def test_a_crash_mid_part_keeps_the_answers_already_received(tmp_path):
    class Dies(Scripted):
        def generate(self, request):
            if len(self.requests) == 1:
                raise KeyboardInterrupt  # the job is killed while the second batch is in flight
            return super().generate(request)

    with pytest.raises(KeyboardInterrupt):
        categorise_part(_part(3), lambda: Dies([ok(0, 1)]), _data(tmp_path), max_retries=0)
    assert _cached(tmp_path) == ["f0"]
    provider = Scripted([ok(0, 1)] * 2)
    _, reused = categorise_part(_part(3), lambda: provider, _data(tmp_path), max_retries=0)
    assert reused == 1 and [r.key for r in provider.requests] == ["b1#1", "b2#1"]


# Concurrency: a part's requests go out together, bounded by the process's limiter


class Slow(Scripted):
    """Answers every request after ``delay`` seconds and records how many were in flight."""

    def __init__(self, delay: float) -> None:
        super().__init__([])
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0

    def generate(self, request):
        with self.lock:
            self.requests.append(request)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        return Answer(text=ok(0, 1))


def test_with_a_limiter_a_parts_requests_overlap_up_to_its_concurrency(tmp_path):
    limiter = RequestLimiter(Limits(max_concurrent=4, requests_per_minute=100_000))
    provider = Slow(0.1)
    results, reused = categorise_part(
        _part(12), lambda: provider, _data(tmp_path), max_retries=0, limiter=limiter
    )
    assert reused == 0 and [r.batch_id for r in results] == [f"b{i}" for i in range(12)]
    assert provider.peak == 4 and limiter.stats.peak_in_flight == 4
    assert _cached(tmp_path) == sorted(f"f{i}" for i in range(12))


def test_two_jobs_of_one_process_share_the_limit(tmp_path):
    """Snakemake runs jobs as threads: two parts at once still keep to one limiter's slots."""
    limiter = RequestLimiter(Limits(max_concurrent=3, requests_per_minute=100_000))
    provider = Slow(0.1)

    def part(prefix: str) -> None:
        batches = [b.model_copy(update={"fingerprint": prefix + b.fingerprint}) for b in _part(6)]
        categorise_part(batches, lambda: provider, _data(tmp_path), max_retries=0, limiter=limiter)

    jobs = [threading.Thread(target=part, args=(p,)) for p in ("x", "y")]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert len(provider.requests) == 12 and provider.peak == 3


def test_without_a_limiter_batches_go_one_after_another(tmp_path):
    provider = Slow(0.01)
    categorise_part(_part(4), lambda: provider, _data(tmp_path), max_retries=0)
    assert provider.peak == 1


# The spend of a run without a cap is written when the job ends


def test_a_part_writes_the_spend_it_kept_in_memory_when_it_ends_even_on_an_error(tmp_path):
    ledger = SpendLedger(tmp_path / "spend" / "ledger.json", tmp_path / "spend" / "stops.json")
    ledger.start(cap=None)
    meter = SpendMeter(
        sync=CataloguePrices("google").pricing("gemini-2.5-flash", False),
        ledger=ledger,
        provider="p",
        model="m",
    )
    limiter = RequestLimiter(Limits(max_concurrent=2, requests_per_minute=100_000))

    class Paid(Scripted):
        def generate(self, request):
            answer = super().generate(request)
            answer.input_tokens, answer.output_tokens = 1000, 100
            return answer

    def in_file() -> int:
        return SpendRecord.model_validate_json(ledger.path.read_bytes()).requests_sent

    provider = Paid([ok(0, 1)] * 3)
    categorise_part(_part(3), lambda: provider, _data(tmp_path), 0, limiter=limiter, meter=meter)
    assert in_file() == 3

    class PaidThenDies(Paid):
        def generate(self, request):
            if len(self.requests) == 1:
                raise KeyboardInterrupt
            return super().generate(request)

    batches = [b.model_copy(update={"fingerprint": "x" + b.fingerprint}) for b in _part(3)]
    with pytest.raises(KeyboardInterrupt):  # one at a time (one thread): one answer, then the error
        categorise_part(batches, lambda: PaidThenDies([ok(0, 1)]), _data(tmp_path), 0, meter=meter)
    assert in_file() == 4
