"""Tests of the Gemini emulator's batch jobs and files (life cycle, plans, per-item errors, paging,
limits), driven through the real ``google-genai`` SDK."""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types
from support.emulators.gemini import (
    Endpoint,
    Fault,
    GeminiEmulator,
    count_tokens,
)
from support.emulators.gemini.answers import count_tokens_by_piece
from support.gemini_sdk import (
    MODEL,
    PROMPT,
    create_from_file,
    create_inline,
    download_lines,
    inline_request,
    jsonl_bytes,
    make_client,
)

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


# letters (accented, Welsh), digits, "²" (a digit, not decimal), "½" and "Ⅻ" (numeric), a
# combining accent, blanks, newlines, a lone surrogate, runs of punctuation and underscores,
# and beyond the Basic Multilingual Plane a letter, a decimal digit and an emoji
_TOKEN_TEXT = [*"aZ09 \t\n\r_-.,|!?'\"’éŵ²½Ⅻ\u0301\xa0\x0b\x1c𝐀𝟘😀", "\ud800", "  ", "___", "-----", "\r\n"]


def test_token_counts_agree_with_the_piece_by_piece_definition() -> None:
    rng = random.Random(15)
    texts = ["", "The cat sat.", "|---|---|\n", "x²y", "²xxxxxxx", "½abcdefgh", "a_b"]
    texts += ["".join(rng.choice(_TOKEN_TEXT) for _ in range(rng.randint(1, 80))) for _ in range(3000)]
    for text in texts:
        assert count_tokens(text) == count_tokens_by_piece(text), repr(text)


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
