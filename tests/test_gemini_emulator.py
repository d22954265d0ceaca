"""Tests of the Gemini emulator's answers, keys, faults, counters and standalone server, driven
through the real ``google-genai`` SDK (batch jobs and files: ``test_gemini_emulator_batches.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from google import genai
from google.genai import errors, types
from support.emulators.gemini import (
    CATEGORIES,
    Endpoint,
    Fault,
    GeminiEmulator,
    categories_of,
    count_tokens,
    default_answer,
    parse_issue_rows,
)
from support.gemini_sdk import (
    MODEL,
    PROMPT,
    TESTS,
    Verdict,
    create_from_file,
    create_inline,
    error_detail,
    jsonl_bytes,
    make_client,
    make_prompt,
)

# --------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------


def test_default_answer_is_deterministic_and_covers_every_issue_id() -> None:
    prompt = make_prompt((4, "x"), (9, "y"), (4, "x"))
    assert [i for i, _ in parse_issue_rows(prompt)] == [4, 9, 4]
    answer = json.loads(default_answer(prompt))
    assert [v["issue_id"] for v in answer] == [4, 9]
    assert default_answer(prompt) == default_answer(prompt)
    for verdict in answer:
        assert set(verdict) == {"issue_id", "error_category", "confidence_score", "reasoning"}
        assert verdict["error_category"] in CATEGORIES
        assert 0 <= verdict["confidence_score"] <= 100
    # the verdict depends on the row only, not on its neighbours
    alone = json.loads(default_answer(make_prompt((9, "y"))))
    assert alone == [answer[1]]
    assert default_answer("no table here") == "[]"


SIX = ("PARSING_ERROR", "SPELLING_ERROR", "ABSOLUTE_GRAMMATICAL_ERROR",
       "POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR", "STYLISTIC_PREFERENCE", "FALSE_POSITIVE")  # fmt: skip


def test_the_answer_keeps_to_the_categories_the_request_offers(client: genai.Client) -> None:
    """A real model answers with the categories of its schema, else of its instructions: the
    earlier tool's system instruction lists six (no schema), ours the nine of the schema's enum."""
    rows = [(i, f"flag {i}") for i in range(60)]
    listed = "Error categories:\n" + "\n".join(f"- `{c}`: ..." for c in SIX)
    instruction = {"parts": [{"text": listed}]}
    assert categories_of({"systemInstruction": instruction}) == SIX
    assert categories_of({}) == CATEGORIES
    assert categories_of({"systemInstruction": {"parts": [{"text": "no categories"}]}}) == CATEGORIES
    schema = {"type": "ARRAY", "items": {"properties": {"error_category": {"enum": ["FALSE_POSITIVE"]}}}}
    assert categories_of(
        {"systemInstruction": instruction, "generationConfig": {"responseSchema": schema}}
    ) == ("FALSE_POSITIVE",)
    response = client.models.generate_content(
        model=MODEL,
        contents=make_prompt(*rows),
        config=types.GenerateContentConfig(system_instruction=listed),
    )
    seen = {v["error_category"] for v in json.loads(response.text)}
    assert seen <= set(SIX) and len(seen) > 3
    # without a list of categories the answer is the one it always was
    plain = client.models.generate_content(model=MODEL, contents=make_prompt(*rows))
    assert plain.text == default_answer(make_prompt(*rows))
    assert {v["error_category"] for v in json.loads(plain.text)} - set(SIX)


def test_generate_content_with_json_schema(emu: GeminiEmulator, client: genai.Client) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=list[Verdict])
    response = client.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert [v["issue_id"] for v in json.loads(response.text or "")] == [1, 2, 3]
    assert isinstance(response.parsed, list)
    assert all(isinstance(v, Verdict) for v in response.parsed)
    candidate = response.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == count_tokens(PROMPT)
    assert usage.candidates_token_count == count_tokens(response.text or "")
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + (usage.thoughts_token_count or 0)
    )
    assert response.model_version == MODEL
    again = client.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert again.text == response.text

    sent = emu.requests[-1]
    assert sent.path == f"/v1/models/{MODEL}:generateContent"
    assert sent.json()["generationConfig"]["responseMimeType"] == "application/json"
    assert emu.generate_content_calls == 2


def test_custom_answer_fn(emu: GeminiEmulator, client: genai.Client) -> None:
    emu.answer_fn = lambda prompt: json.dumps({"chars": len(prompt)})
    response = client.models.generate_content(model=MODEL, contents="hello")
    assert json.loads(response.text or "") == {"chars": 5}


def test_base_url_from_environment(emu: GeminiEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_GENAI_API_VERSION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    monkeypatch.setenv("GEMINI_API_KEY", "env-key")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    # Keep a reference: a garbage-collected genai.Client closes its HTTP client.
    client = genai.Client()
    client.models.generate_content(model=MODEL, contents=PROMPT)
    assert emu.requests[-1].header("x-goog-api-key") == "env-key"
    assert emu.requests[-1].path.startswith("/v1/models/")  # SDK 3.3.0 default

    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1beta")
    beta_client = genai.Client()
    beta_client.models.generate_content(model=MODEL, contents=PROMPT)
    assert emu.requests[-1].path.startswith("/v1beta/models/")


# --------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------


def test_invalid_api_key(emu: GeminiEmulator) -> None:
    client = make_client(emu, api_key="invalid")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="x")
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert error_detail(caught.value, "ErrorInfo")["reason"] == "API_KEY_INVALID"


def test_api_key_allow_list_and_missing_key() -> None:
    with GeminiEmulator(api_keys={"good"}) as emulator:
        good, other = make_client(emulator, "good"), make_client(emulator, "other")
        good.models.generate_content(model=MODEL, contents="x")
        with pytest.raises(errors.ClientError) as caught:
            other.batches.list()
        assert caught.value.code == 400
        request = urllib.request.Request(
            f"{emulator.url}/v1beta/models/{MODEL}:generateContent",
            data=b'{"contents": [{"parts": [{"text": "x"}]}]}',
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as http_error:
            urllib.request.urlopen(request, timeout=5)
        assert http_error.value.code == 403
        assert json.load(http_error.value)["error"]["status"] == "PERMISSION_DENIED"
        assert emulator.generate_content_calls == 2


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "quota_id"),
    [
        (Fault.RATE_LIMIT_MINUTE, "GenerateRequestsPerMinutePerProjectPerModel"),
        (Fault.RATE_LIMIT_DAY, "GenerateRequestsPerDayPerProjectPerModel"),
    ],
)
def test_rate_limit_faults(emu: GeminiEmulator, client: genai.Client, fault: str, quota_id: str) -> None:
    emu.inject(fault)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    exc = caught.value
    assert exc.code == 429
    assert exc.status == "RESOURCE_EXHAUSTED"
    assert error_detail(exc, "RetryInfo")["retryDelay"] == "2s"
    violation = error_detail(exc, "QuotaFailure")["violations"][0]
    assert violation["quotaId"] == quota_id
    assert violation["quotaDimensions"]["model"] == MODEL
    # one-shot: the next call goes through
    client.models.generate_content(model=MODEL, contents=PROMPT)
    assert emu.pending_faults() == []


def test_free_tier_quota_variant(emu: GeminiEmulator, client: genai.Client) -> None:
    emu.inject(Fault.RATE_LIMIT_DAY, free_tier=True, retry_delay="37s")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    violation = error_detail(caught.value, "QuotaFailure")["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    assert error_detail(caught.value, "RetryInfo")["retryDelay"] == "37s"


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [(Fault.INTERNAL, 500, "INTERNAL"), (Fault.UNAVAILABLE, 503, "UNAVAILABLE")],
)
def test_server_error_faults(
    emu: GeminiEmulator, client: genai.Client, fault: str, code: int, status: str
) -> None:
    emu.inject(fault, times=2)
    for _ in range(2):
        with pytest.raises(errors.ServerError) as caught:
            client.models.generate_content(model=MODEL, contents=PROMPT)
        assert caught.value.code == code
        assert caught.value.status == status
    client.models.generate_content(model=MODEL, contents=PROMPT)


def test_fault_filtered_by_endpoint(emu: GeminiEmulator, client: genai.Client) -> None:
    name = create_inline(client, ["a"]).name or ""
    emu.inject(Fault.UNAVAILABLE, endpoint=Endpoint.BATCHES_GET, path_contains=name)
    client.models.generate_content(model=MODEL, contents=PROMPT)
    with pytest.raises(errors.ServerError):
        client.batches.get(name=name)
    assert emu.requests[-1].status == 503
    client.batches.get(name=name)
    assert emu.stats()["faults_served"] == {Fault.UNAVAILABLE: 1}


def test_persistent_generic_http_error(emu: GeminiEmulator, client: genai.Client) -> None:
    emu.inject(Fault.HTTP_ERROR, times=None, status=504, grpc_status="DEADLINE_EXCEEDED")
    for _ in range(3):
        with pytest.raises(errors.ServerError) as caught:
            client.models.generate_content(model=MODEL, contents=PROMPT)
        assert caught.value.code == 504
    emu.clear_faults()
    client.models.generate_content(model=MODEL, contents=PROMPT)


def answer_ids(response: types.GenerateContentResponse) -> list[int]:
    return [v["issue_id"] for v in json.loads(response.text or "")]


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault.MISSING_IDS, lambda r: answer_ids(r) == [1, 2]),
        (Fault.UNKNOWN_IDS, lambda r: answer_ids(r)[:3] == [1, 2, 3] and len(answer_ids(r)) == 4),
        (Fault.DUPLICATE_IDS, lambda r: answer_ids(r) == [1, 2, 3, 1]),
    ],
)
def test_answer_id_faults(
    emu: GeminiEmulator,
    client: genai.Client,
    fault: str,
    check: Callable[[types.GenerateContentResponse], bool],
) -> None:
    emu.inject(fault)
    assert check(client.models.generate_content(model=MODEL, contents=PROMPT))
    assert answer_ids(client.models.generate_content(model=MODEL, contents=PROMPT)) == [1, 2, 3]


def test_malformed_and_truncated_answers(emu: GeminiEmulator, client: genai.Client) -> None:
    emu.inject(Fault.MALFORMED_JSON)
    emu.inject(Fault.TRUNCATED_JSON)
    malformed = client.models.generate_content(model=MODEL, contents=PROMPT)
    truncated = client.models.generate_content(model=MODEL, contents=PROMPT)
    for response in (malformed, truncated):
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.text or "")
    assert malformed.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert truncated.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]


def test_safety_block(emu: GeminiEmulator, client: genai.Client) -> None:
    emu.inject(Fault.SAFETY_BLOCK)
    response = client.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text is None
    assert response.candidates[0].finish_reason == types.FinishReason.SAFETY  # type: ignore[index]


# --------------------------------------------------------------------------
# Counters, recording, latency, threads, standalone
# --------------------------------------------------------------------------


def test_counters_and_secret_grep(emu: GeminiEmulator) -> None:
    secret = "AIzaSy-very-secret-key"
    client = make_client(emu, api_key=secret)
    client.models.generate_content(model=MODEL, contents=PROMPT)
    job = create_inline(client, ["a", "b"])
    create_from_file(client, ["c"])
    client.batches.get(name=job.name or "")

    stats = emu.stats()
    assert stats["generate_content_calls"] == 1
    assert stats["batch_creations"] == 2
    assert stats["http_requests"] == 1 + 1 + 2 + 1 + 1  # upload = start + chunk
    assert stats["endpoint_counts"][Endpoint.FILES_UPLOAD_CHUNK] == 1
    create_request = next(
        r
        for r in emu.requests
        if r.endpoint == Endpoint.BATCH_GENERATE_CONTENT
        and b"inputConfig" in r.body
        and b"requests" in r.body
    )
    assert stats["max_inline_batch_bytes"] == create_request.body_size
    assert stats["uploaded_file_sizes"] == [len(jsonl_bytes(["c"]))]
    assert emu.path_counts[f"GET /v1/{job.name}"] == 1
    json.dumps(stats)

    leaks = emu.find_requests(secret)
    assert leaks
    assert all(secret not in r.body.decode() for r in leaks)
    assert all(r.header("x-goog-api-key") == secret for r in leaks)
    emu.reset_stats()
    assert emu.http_requests == 0
    assert emu.requests == []


def test_latency_and_concurrency() -> None:
    with GeminiEmulator(latency=0.3) as emulator:
        client = make_client(emulator)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            texts = list(
                pool.map(
                    lambda _: client.models.generate_content(model=MODEL, contents=PROMPT).text,
                    range(8),
                )
            )
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 1.5  # served in parallel, not 8 x 0.3 s
        assert len(set(texts)) == 1
        assert emulator.generate_content_calls == 8


def test_peak_in_flight_counts_the_calls_under_way_at_once() -> None:
    with GeminiEmulator(latency=0.5) as emulator:
        client = make_client(emulator)
        for _ in range(3):  # one after another: never more than one under way
            client.models.generate_content(model=MODEL, contents=PROMPT)
        assert emulator.stats()["peak_in_flight"] == 1
        emulator.reset_stats()
        assert emulator.stats()["peak_in_flight"] == 0
        together = threading.Barrier(8, timeout=10)

        def call(_: int) -> None:
            together.wait()
            client.models.generate_content(model=MODEL, contents=PROMPT)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(call, range(8)))
        # eight calls set off together, each answered after 0.5 s: (nearly) all under way at once
        assert 4 <= emulator.stats()["peak_in_flight"] <= 8


def test_standalone_server() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "support.emulators.gemini",
            "--port",
            "0",
            "--latency",
            "0.01",
            "--auto-complete",
            "--complete-after-polls",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=TESTS,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))
        client.models.generate_content(model=MODEL, contents=PROMPT)
        name = create_inline(client, ["a"]).name or ""
        assert client.batches.get(name=name).state == types.JobState.JOB_STATE_SUCCEEDED
        with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=5) as reply:
            stats = json.load(reply)
        assert stats["generate_content_calls"] == 1
        assert stats["batch_creations"] == 1
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert json.loads(stderr.strip().splitlines()[-1])["http_requests"] == 3


def test_requests_per_minute_limit_answers_429_with_the_time_until_a_slot_frees() -> None:
    with GeminiEmulator(requests_per_minute=2, rate_window=0.5) as emulator:
        client = make_client(emulator)
        client.models.generate_content(model=MODEL, contents=PROMPT)
        client.models.generate_content(model=MODEL, contents=PROMPT)
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model=MODEL, contents=PROMPT)
        assert caught.value.code == 429
        violation = error_detail(caught.value, "QuotaFailure")["violations"][0]
        assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
        delay = float(error_detail(caught.value, "RetryInfo")["retryDelay"].rstrip("s"))
        assert 0 < delay <= 0.5
        time.sleep(delay + 0.01)
        client.models.generate_content(model=MODEL, contents=PROMPT)  # the window moved on
        stats = emulator.stats()
        assert stats["rate_limited"] == 1 and stats["answered"] == 3


def test_latency_is_a_base_plus_a_time_per_flag() -> None:
    with GeminiEmulator(latency=0.05, latency_per_item=0.1) as emulator:
        client = make_client(emulator)
        started = time.monotonic()
        client.models.generate_content(model=MODEL, contents=make_prompt((1, "a")))
        one = time.monotonic() - started
        started = time.monotonic()
        client.models.generate_content(model=MODEL, contents=PROMPT)  # three flags
        three = time.monotonic() - started
        assert one >= 0.15 and three >= 0.35
