"""Tests of the Gemini emulator, driven through the real ``google-genai`` SDK."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel
from support.emulators.gemini import (
    CATEGORIES,
    Endpoint,
    Fault,
    GeminiEmulator,
    count_tokens,
    default_answer,
    parse_issue_rows,
)

MODEL = "gemini-2.5-flash"
TESTS = Path(__file__).parent


def make_prompt(*rows: tuple[int, str]) -> str:
    lines = [
        "Categorise each LanguageTool flag below.",
        "",
        "| issue_id | rule_id | message | context |",
        "|---|---|---|---|",
    ]
    lines += [f"| {issue_id} | RULE_{issue_id} | {text} | ...{text}... |" for issue_id, text in rows]
    lines += ["", "Answer with a JSON array."]
    return "\n".join(lines)


PROMPT = make_prompt((1, "teh cat"), (2, "a apple"), (3, "colour/color"))


class Verdict(BaseModel):
    issue_id: int
    error_category: str
    confidence_score: int
    reasoning: str


def make_client(emulator: GeminiEmulator, api_key: str = "test-key") -> genai.Client:
    return genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=emulator.url))


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[GeminiEmulator]:
    with GeminiEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def shared_client(shared_emu: GeminiEmulator) -> genai.Client:
    # genai.Client() builds SSL contexts (~0.1 s): share one per module.
    return make_client(shared_emu)


@pytest.fixture
def emu(shared_emu: GeminiEmulator) -> GeminiEmulator:
    shared_emu.reset()
    shared_emu.answer_fn = None
    return shared_emu


@pytest.fixture
def client(emu: GeminiEmulator, shared_client: genai.Client) -> genai.Client:
    return shared_client


def inline_request(prompt: str, key: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "config": {"response_mime_type": "application/json"},
    }
    if key is not None:
        request["metadata"] = {"key": key}
    return request


def create_inline(client: genai.Client, keys: list[str], **config: Any) -> types.BatchJob:
    prompts = [make_prompt((i + 1, f"text {key}")) for i, key in enumerate(keys)]
    return client.batches.create(
        model=MODEL,
        src=[inline_request(p, k) for p, k in zip(prompts, keys, strict=True)],
        config=config or None,
    )


def jsonl_bytes(keys: list[str]) -> bytes:
    lines = [
        json.dumps(
            {
                "key": key,
                "request": {
                    "contents": [{"role": "user", "parts": [{"text": make_prompt((i, key))}]}],
                    "generation_config": {"response_mime_type": "application/json"},
                },
            }
        )
        for i, key in enumerate(keys)
    ]
    return ("\n".join(lines) + "\n").encode()


def create_from_file(client: genai.Client, keys: list[str]) -> types.BatchJob:
    uploaded = client.files.upload(
        file=io.BytesIO(jsonl_bytes(keys)),
        config={"mime_type": "jsonl", "display_name": "requests"},
    )
    assert uploaded.name is not None
    return client.batches.create(model=MODEL, src=uploaded.name)


def download_lines(client: genai.Client, job: types.BatchJob) -> list[dict[str, Any]]:
    assert job.dest is not None
    assert job.dest.file_name is not None
    data = client.files.download(file=job.dest.file_name)
    return [json.loads(line) for line in data.decode().splitlines() if line]


def error_detail(exc: errors.APIError, type_suffix: str) -> dict[str, Any]:
    details = exc.details["error"]["details"]
    return next(d for d in details if d["@type"].endswith(type_suffix))


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
# Batches
# --------------------------------------------------------------------------


def test_inline_batch_advances_one_state_per_poll() -> None:
    with GeminiEmulator(batch_mode="per_poll") as emulator:
        client = make_client(emulator)
        job = create_inline(client, ["a", "b", "c"], display_name="run-1")
        assert job.name is not None
        assert job.name.startswith("batches/")
        assert job.state == types.JobState.JOB_STATE_PENDING
        assert job.display_name == "run-1"
        assert job.model == f"models/{MODEL}"
        assert job.create_time is not None
        assert job.dest is None

        states = [client.batches.get(name=job.name).state for _ in range(2)]
        assert states == [types.JobState.JOB_STATE_RUNNING, types.JobState.JOB_STATE_SUCCEEDED]
        done = client.batches.get(name=job.name)
        assert done.end_time is not None
        assert done.dest is not None
        assert done.dest.inlined_responses is not None
        responses = done.dest.inlined_responses
        assert [r.metadata for r in responses] == [{"key": k} for k in "abc"]
        for index, item in enumerate(responses):
            assert item.error is None
            assert item.response is not None
            assert [v["issue_id"] for v in json.loads(item.response.text or "")] == [index + 1]

        wire = emulator.job(job.name)
        assert wire["done"] is True
        assert wire["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
        assert wire["metadata"]["displayName"] == "run-1"
        assert emulator.batch_creations == 1
        assert emulator.endpoint_counts[Endpoint.BATCHES_GET] == 3


def test_token_counts_follow_the_text() -> None:
    assert count_tokens("The cat sat.") == 4  # The, cat, sat, "."
    assert count_tokens("categorisation 2026") == 3 + 4  # 14 letters: 3 pieces; 4 digits
    assert count_tokens("|---|---|\n") == 5 + 1
    english = "The pipeline asks a model to triage every flag into one category with a reason."
    assert 3.5 < len(english) / count_tokens(english) < 5.5


@pytest.mark.parametrize(("budget", "thinks"), [(0, False), (100, True), (-1, True)])
def test_usage_reports_thinking_within_the_budget(client: genai.Client, budget: int, thinks: bool) -> None:
    system = "You triage LanguageTool flags."
    config = types.GenerateContentConfig(
        system_instruction=system, thinking_config=types.ThinkingConfig(thinking_budget=budget)
    )
    usage = client.models.generate_content(model=MODEL, contents=PROMPT, config=config).usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == count_tokens(PROMPT) + count_tokens(system)
    thoughts = usage.thoughts_token_count or 0
    assert (thoughts > 0) is thinks
    if budget > 0:
        assert thoughts <= budget


def test_batch_answers_match_generate_content(emu: GeminiEmulator, client: genai.Client) -> None:
    job = client.batches.create(model=MODEL, src=[inline_request(PROMPT, "k")])
    emu.complete_all()
    done = client.batches.get(name=job.name or "")
    item = done.dest.inlined_responses[0]  # type: ignore[union-attr, index]
    direct = client.models.generate_content(model=MODEL, contents=PROMPT)
    assert item.response is not None
    assert item.response.text == direct.text


def test_manual_mode_waits_for_the_test(emu: GeminiEmulator, client: genai.Client) -> None:
    job = create_inline(client, ["a"])
    name = job.name or ""
    for _ in range(3):
        assert client.batches.get(name=name).state == types.JobState.JOB_STATE_PENDING
    assert emu.advance(name) == "RUNNING"
    assert client.batches.get(name=name).state == types.JobState.JOB_STATE_RUNNING
    emu.set_state(name, "BATCH_STATE_PENDING")
    assert emu.job_state(name) == "PENDING"
    emu.set_state(name, "RUNNING")
    assert emu.complete_all() == [name]
    assert client.batches.get(name=name).state == types.JobState.JOB_STATE_SUCCEEDED
    assert emu.complete_all() == []
    with pytest.raises(KeyError):
        emu.job("batches/unknown")


def test_auto_mode_by_polls_and_by_time() -> None:
    with GeminiEmulator(batch_mode="auto", complete_after_polls=3) as emulator:
        client = make_client(emulator)
        name = create_inline(client, ["a"]).name or ""
        states = [client.batches.get(name=name).state for _ in range(3)]
        assert states[-1] == types.JobState.JOB_STATE_SUCCEEDED
        assert states[1] == types.JobState.JOB_STATE_RUNNING
    with GeminiEmulator(batch_mode="auto", complete_after_polls=None, complete_after_seconds=0.2) as emulator:
        client = make_client(emulator)
        name = create_inline(client, ["a"]).name or ""
        assert client.batches.get(name=name).state != types.JobState.JOB_STATE_SUCCEEDED
        time.sleep(0.25)
        assert client.batches.get(name=name).state == types.JobState.JOB_STATE_SUCCEEDED


def test_batch_from_uploaded_jsonl_file(emu: GeminiEmulator, client: genai.Client, tmp_path: Path) -> None:
    payload = jsonl_bytes(["x", "y"])
    path = tmp_path / "requests.jsonl"
    path.write_bytes(payload)
    # mimetypes does not know .jsonl: the SDK needs an explicit mime_type.
    with pytest.raises(ValueError, match="mime"):
        client.files.upload(file=path)
    uploaded = client.files.upload(file=path, config={"mime_type": "jsonl"})
    assert uploaded.name is not None
    assert uploaded.name.startswith("files/")
    assert uploaded.size_bytes == len(payload)
    assert uploaded.state == types.FileState.ACTIVE
    assert client.files.get(name=uploaded.name).mime_type == "jsonl"
    assert emu.file_content(uploaded.name) == payload
    assert emu.uploaded_file_sizes == [len(payload)]

    job = client.batches.create(model=MODEL, src=uploaded.name)
    emu.complete_all()
    done = client.batches.get(name=job.name or "")
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None
    assert done.dest.inlined_responses is None
    assert done.dest.file_name == f"files/batch-{(job.name or '').split('/')[1]}"
    lines = download_lines(client, done)
    assert [line["key"] for line in lines] == ["x", "y"]
    text = lines[1]["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text)[0]["issue_id"] == 1

    generated = client.files.get(name=done.dest.file_name or "")
    assert generated.source == types.FileSource.GENERATED
    assert generated.download_uri is not None
    target = tmp_path / "out.jsonl"
    client.files.download(file=generated, destination=str(target))
    assert target.read_bytes() == emu.file_content(done.dest.file_name or "")


def test_file_errors(emu: GeminiEmulator, client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.files.get(name="files/doesnotexist")
    assert caught.value.code == 403
    uploaded = client.files.upload(file=io.BytesIO(b"{}\n"), config={"mime_type": "jsonl"})
    with pytest.raises(errors.ClientError) as caught:
        client.files.download(file=uploaded.name or "")
    assert caught.value.code == 400
    with pytest.raises(errors.ClientError) as caught:
        client.batches.create(model=MODEL, src="files/doesnotexist")
    assert caught.value.code == 404


def test_list_pages_through_all_jobs(emu: GeminiEmulator, client: genai.Client) -> None:
    names = [create_inline(client, [f"k{i}"]).name for i in range(5)]
    pager = client.batches.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert [job.name for job in pager] == names
    list_calls = [r for r in emu.requests if r.endpoint == Endpoint.BATCHES_LIST]
    assert len(list_calls) == 3
    assert "pageSize=2" in list_calls[0].query
    assert "pageToken=" in list_calls[1].query
    assert [j.name for j in client.batches.list()] == names


def test_cancel_and_delete(emu: GeminiEmulator, client: genai.Client) -> None:
    name = create_inline(client, ["a"]).name or ""
    client.batches.cancel(name=name)
    assert client.batches.get(name=name).state == types.JobState.JOB_STATE_CANCELLED
    with pytest.raises(errors.ClientError) as caught:
        client.batches.cancel(name=name)
    assert caught.value.status == "FAILED_PRECONDITION"
    client.batches.delete(name=name)
    with pytest.raises(errors.ClientError) as caught:
        client.batches.get(name=name)
    assert caught.value.code == 404
    assert emu.job_names() == []


def test_inline_request_size_limit() -> None:
    with GeminiEmulator(max_inline_bytes=2000) as emulator:
        client = make_client(emulator)
        create_inline(client, ["a"])
        assert 0 < emulator.max_inline_batch_bytes <= 2000
        with pytest.raises(errors.ClientError) as caught:
            create_inline(client, [f"key-{i}" for i in range(20)])
        assert caught.value.code == 400
        assert emulator.batch_creations == 1
        assert emulator.max_inline_batch_bytes > 2000  # the rejected body is recorded


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


@pytest.mark.parametrize("final_state", ["FAILED", "EXPIRED", "CANCELLED"])
def test_batch_terminal_failures(emu: GeminiEmulator, client: genai.Client, final_state: str) -> None:
    error = {"code": 3, "message": "Input file is malformed."}
    emu.plan_next_batch(final_state=final_state, error=error)
    name = create_inline(client, ["a"]).name or ""
    emu.complete_all()
    job = client.batches.get(name=name)
    assert job.state == types.JobState(f"JOB_STATE_{final_state}")
    assert job.dest is None
    wire = emu.job(name)
    assert wire["done"] is True
    if final_state == "FAILED":
        assert wire["error"] == error
    else:
        assert "error" not in wire
    # the plan was one-shot
    other = create_inline(client, ["b"]).name or ""
    emu.complete_all()
    assert client.batches.get(name=other).state == types.JobState.JOB_STATE_SUCCEEDED


def test_per_item_errors_inline_and_jsonl(emu: GeminiEmulator, client: genai.Client) -> None:
    emu.plan_next_batch(item_errors={"b": {"code": 3, "message": "bad request"}})
    inline = create_inline(client, ["a", "b", "c"]).name or ""
    emu.plan_next_batch(item_errors=[1])
    from_file = create_from_file(client, ["x", "y", "z"]).name or ""
    emu.complete_all()

    responses = client.batches.get(name=inline).dest.inlined_responses  # type: ignore[union-attr]
    assert responses is not None
    assert [r.error is None for r in responses] == [True, False, True]
    assert responses[1].error.code == 3  # type: ignore[union-attr]
    assert responses[1].error.message == "bad request"  # type: ignore[union-attr]
    assert responses[1].response is None

    lines = download_lines(client, client.batches.get(name=from_file))
    assert ["error" in line for line in lines] == [False, True, False]
    assert lines[1]["key"] == "y"
    assert "response" not in lines[1]


def test_batch_answer_faults_shuffle_and_missing_metadata(emu: GeminiEmulator, client: genai.Client) -> None:
    keys = [f"k{i}" for i in range(6)]
    emu.plan_next_batch(shuffle=True, answer_faults={"k2": Fault.TRUNCATED_JSON})
    shuffled = create_inline(client, keys).name or ""
    emu.plan_next_batch(drop_metadata=True)
    bare = create_inline(client, keys).name or ""
    emu.complete_all()

    responses = client.batches.get(name=shuffled).dest.inlined_responses or []  # type: ignore[union-attr]
    got = [r.metadata["key"] for r in responses]  # type: ignore[index]
    assert sorted(got) == keys
    assert got != keys
    by_key = {r.metadata["key"]: r.response for r in responses}  # type: ignore[index]
    truncated = by_key["k2"].candidates[0]  # type: ignore[union-attr, index]
    assert truncated.finish_reason == types.FinishReason.MAX_TOKENS

    bare_responses = client.batches.get(name=bare).dest.inlined_responses or []  # type: ignore[union-attr]
    assert len(bare_responses) == 6
    assert all(r.metadata is None for r in bare_responses)


def test_plan_existing_batch_and_force_state(emu: GeminiEmulator, client: genai.Client) -> None:
    name = create_inline(client, ["a", "b"]).name or ""
    emu.plan_batch(name, item_errors=["a"])
    emu.set_state(name, "JOB_STATE_SUCCEEDED")
    responses = client.batches.get(name=name).dest.inlined_responses or []  # type: ignore[union-attr]
    assert [r.error is not None for r in responses] == [True, False]
    assert emu.job(name)["metadata"]["batchStats"] == {
        "requestCount": "2",
        "successfulRequestCount": "1",
        "failedRequestCount": "1",
    }


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
