"""The gemini provider with the real google-genai SDK against the loopback emulator."""

from __future__ import annotations

import json
import threading
import time

import pytest
from support.emulators.gemini import Fault, GeminiEmulator
from test_categorise import BATCH

from llm_categoriser.categorise import categorise_batch, categorise_part
from llm_categoriser.errors import ProviderError
from llm_categoriser.layout import Layout
from llm_categoriser.limits import forget_limiters
from llm_categoriser.providers.base import Request
from llm_categoriser.providers.gemini.batch import GeminiBatchBackend
from llm_categoriser.providers.gemini.client import GeminiProvider, api_key, rest_request
from llm_categoriser.settings import resolve

FAKE_KEY = "AIzaFAKE-test-key-0123456789"


@pytest.fixture(scope="module")
def emu():
    with GeminiEmulator() as emulator:
        yield emulator


@pytest.fixture
def provider(emu, monkeypatch):
    emu.reset()
    emu.answer_fn = None
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    settings = resolve({"provider": "gemini", "max_request_attempts": 4})
    forget_limiters()  # each test starts with a fresh limiter (no pause or pace left over)
    p = GeminiProvider(settings, FAKE_KEY)
    p.sleeps = []
    p.sleep = p.sleeps.append
    return p


def test_categorises_a_batch_with_structured_output(emu, provider):
    result = categorise_batch(BATCH, provider, max_retries=1)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert result.requests == 1 and result.input_tokens > 0
    body = emu.requests[-1].json()
    schema = body["generationConfig"]["responseSchema"]
    assert "FALSE_POSITIVE" in schema["items"]["properties"]["error_category"]["enum"]
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert "issue_id" in body["systemInstruction"]["parts"][0]["text"]


def test_429_pauses_the_process_for_the_retry_delay_and_slows_it_down(emu, provider):
    emu.inject(Fault.RATE_LIMIT_MINUTE, retry_delay="0.4s")
    started = time.monotonic()
    result = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert time.monotonic() - started >= 0.4
    assert provider.sleeps == []  # the shared limiter waited, not this request alone
    assert provider.limiter.stats.rate_limited == 1 and provider.limiter.pace is not None


def test_5xx_is_retried_with_backoff(emu, provider):
    emu.inject(Fault.UNAVAILABLE)
    emu.inject(Fault.INTERNAL)
    result = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert len(provider.sleeps) == 2 and provider.sleeps[1] > 0


def test_persistent_5xx_marks_flags_failed(emu, provider):
    emu.inject(Fault.UNAVAILABLE, times=None)
    result = categorise_batch(BATCH, provider, max_retries=1)
    assert {v.status for v in result.items.values()} == {"failed"}
    assert "503" in next(iter(result.items.values())).error


def test_daily_quota_stops_with_advice(emu, provider):
    emu.inject(Fault.RATE_LIMIT_DAY)
    with pytest.raises(ProviderError, match="per-day quota"):
        categorise_batch(BATCH, provider, max_retries=0)
    assert provider.sleeps == []


def test_invalid_key_stops_and_never_shows_the_key(emu, monkeypatch):
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    bad = GeminiProvider(resolve({"provider": "gemini"}), "invalid")
    with pytest.raises(ProviderError, match="rejected the API key") as info:
        categorise_batch(BATCH, bad, max_retries=0)
    assert "invalid" not in str(info.value).replace("Invalid", "")


@pytest.mark.parametrize(
    "fault",
    [Fault.MALFORMED_JSON, Fault.TRUNCATED_JSON, Fault.MISSING_IDS, Fault.UNKNOWN_IDS, Fault.DUPLICATE_IDS],
)
def test_bad_answers_are_retried_for_the_missing_flags(emu, provider, fault):
    emu.inject(fault)
    result = categorise_batch(BATCH, provider, max_retries=2)
    assert {v.status for v in result.items.values()} <= {"ok", "repaired"}
    assert len(result.items) == 2


def test_missing_key_is_a_clear_error():
    with pytest.raises(ProviderError, match="GEMINI_API_KEY"):
        api_key({})
    assert api_key({"GOOGLE_API_KEY": "k"}) == "k"


def test_key_not_in_repr(provider):
    assert FAKE_KEY not in repr(provider)
    assert FAKE_KEY not in json.dumps(provider.settings.model_dump())


def test_a_rate_limited_api_is_kept_busy_at_its_limit_without_losing_a_flag(monkeypatch, tmp_path):
    """Concurrent requests against a 5-per-second API: 429s slow the whole process down and
    every batch is still answered (throughput at the limit: docs/BENCHMARKS.md)."""
    with GeminiEmulator(requests_per_minute=5, rate_window=1.0, latency=0.05) as limited:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", limited.url)
        settings = resolve({"provider": "gemini", "max_request_attempts": 20, "max_concurrent_requests": 8})
        forget_limiters()
        provider = GeminiProvider(settings, FAKE_KEY)
        batches = [BATCH.model_copy(update={"batch_id": f"b{i}", "fingerprint": f"f{i}"}) for i in range(15)]
        started = time.monotonic()
        results, _ = categorise_part(
            batches, lambda: provider, Layout("Documents", str(tmp_path)), 0, limiter=provider.limiter
        )
        elapsed = time.monotonic() - started
        stats = limited.stats()
    assert all(item.status == "ok" for r in results for item in r.items.values())
    assert stats["answered"] == 15 and stats["rate_limited"] >= 1
    assert provider.limiter.stats.rate_limited >= 1
    assert elapsed >= 2.0  # 15 requests at 5 a second need three windows


def test_calls_queued_behind_the_first_one_go_together_once_it_succeeds(provider):
    """Until a call has succeeded, calls go one at a time (a bad key is met once); the calls
    that queued meanwhile then go at once, not one after another (docs/DESIGN.md §24, §26)."""
    first_out, release = threading.Event(), threading.Event()
    together = threading.Barrier(4, timeout=5)
    errors: list[BaseException] = []

    def first() -> str:
        first_out.set()
        release.wait(5)
        return "first"

    def call(fn) -> None:
        try:
            provider.call("generateContent", fn, retry=False)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(first,))]
    threads[0].start()
    first_out.wait(5)
    threads += [threading.Thread(target=call, args=(together.wait,)) for _ in range(4)]
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.2)  # the four are queued behind the first call
    release.set()
    for thread in threads:
        thread.join()
    assert errors == []  # all four were out at once (one at a time, the barrier breaks)


def test_a_connection_is_kept_for_every_request_in_flight(emu, monkeypatch):
    """The SDK keeps as many connections open as requests may be in flight, so a second wave of
    concurrent requests opens none (its default pool keeps fewer: docs/DESIGN.md §26)."""
    emu.reset()
    emu.answer_fn = None
    monkeypatch.setattr(emu, "latency", 0.2)  # the requests of a wave overlap
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    concurrent = 25
    settings = resolve({"provider": "gemini", "max_concurrent_requests": concurrent})
    forget_limiters()
    provider = GeminiProvider(settings, FAKE_KEY)
    categorise_batch(BATCH, provider, max_retries=0)  # the first call goes alone (§24)
    before = emu.connections
    for _wave in range(2):
        threads = [
            threading.Thread(target=categorise_batch, args=(BATCH, provider, 0)) for _ in range(concurrent)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert emu.stats()["generate_content_calls"] == 1 + 2 * concurrent
    assert emu.connections - before <= concurrent


@pytest.mark.parametrize(("text", "transport"), [("plain words " * 700, "inline"), ("’" * 3000, "file")])
def test_the_inline_limit_counts_the_bytes_the_sdk_sends(monkeypatch, text: str, transport: str) -> None:
    """A curly apostrophe is 3 bytes of UTF-8 but 6 as the SDK sends it (``\\u2019``): a job
    under the limit in UTF-8 but over it as sent goes as a file, not into a 400 from the API."""
    limit = 12_000
    settings = resolve({"provider": "gemini", "mode": "batch", "max_inline_bytes": limit})
    system = "Triage the flags."
    requests = [Request(key="k1", system=system, user=text, batch=None, local_ids=set())]
    as_utf8 = len(json.dumps([rest_request(settings, system, text)], ensure_ascii=False).encode())
    assert as_utf8 < limit  # the same size counted in UTF-8 would have sent it inline
    with GeminiEmulator(batch_mode="manual", max_inline_bytes=limit) as emulator:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.url)
        created = GeminiBatchBackend(settings, FAKE_KEY).create(f"llmcat-limit-{transport}", requests)
        assert created.transport == transport and emulator.batch_creations == 1
        if transport == "inline":  # the size recorded is the size of the body the API received
            assert created.payload_bytes == emulator.max_inline_batch_bytes <= limit
        else:
            assert emulator.uploaded_file_sizes == [created.payload_bytes]
