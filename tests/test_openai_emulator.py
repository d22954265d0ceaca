"""The OpenAI emulator, driven through the real ``openai`` SDK (no mocks)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from support.chat_sdk import OPENAI_SDK, PROMPT, SCHEMA
from support.emulators.openai import BatchPlan, Fault, OpenAIEmulator

KEY = OPENAI_SDK.key


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_keys=[KEY], models=["gpt-4.1-mini"], retry_after=0.01) as emu:
        yield emu


@pytest.fixture
def emu(server: OpenAIEmulator) -> OpenAIEmulator:
    server.reset()
    server.quota = None
    server.batch_mode = "manual"
    server.require_key = True
    return server


@pytest.fixture(scope="module")
def client(server: OpenAIEmulator) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=server.url, max_retries=0)


ask = OPENAI_SDK.ask


def batch_input(n: int, model: str = "gpt-4.1-mini") -> bytes:
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"| issue_id |\n| {i} | x{i} |"}],
            },
        }
        for i in range(n)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def submit(client: openai.OpenAI, n: int = 3) -> openai.types.Batch:
    uploaded = client.files.create(file=("in.jsonl", batch_input(n)), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "demo"},
    )


def lines(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    assert file_id
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_usage_reports_reasoning_and_no_cache_on_a_first_prompt(emu, client):
    completion = ask(client, response_format=SCHEMA, reasoning_effort="low")
    assert [v["issue_id"] for v in json.loads(completion.choices[0].message.content)["answers"]] == [0, 1, 2]
    usage = completion.usage
    assert usage.completion_tokens_details.reasoning_tokens == 64
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_without_a_schema_the_answer_is_a_bare_array(emu, client):
    assert isinstance(json.loads(ask(client).choices[0].message.content), list)


def test_a_long_repeated_system_prompt_is_reported_as_cached(emu, client):
    system = "Category definitions. " * 300
    messages = [{"role": "system", "content": system}, {"role": "user", "content": PROMPT}]
    first = client.chat.completions.create(model="gpt-4.1-mini", messages=messages)
    second = client.chat.completions.create(model="gpt-4.1-mini", messages=messages)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens >= 1024


def test_quota_exhaustion_is_a_distinct_429(emu, client):
    emu.inject(Fault.QUOTA)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client)
    assert caught.value.code == "insufficient_quota"


def test_a_server_without_keys_accepts_keyless_requests(emu):
    emu.require_key = False
    emu.api_keys, saved = None, emu.api_keys
    try:
        keyless = openai.OpenAI(api_key="unused", base_url=emu.url, max_retries=0)
        assert ask(keyless).choices
        raw = emu.handle(
            "POST",
            "/v1/chat/completions",
            {},
            json.dumps({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": PROMPT}]}).encode(),
        )
        assert raw.status == 200
    finally:
        emu.api_keys = saved


def test_batch_lifecycle_completed(emu, client):
    batch = submit(client)
    assert batch.status == "validating"
    assert client.files.retrieve(batch.input_file_id).purpose == "batch"
    emu.advance(batch.id)
    assert client.batches.retrieve(batch.id).status == "in_progress"
    emu.advance(batch.id)
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.request_counts.completed == 3
    assert done.error_file_id is None
    out = lines(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in out) == ["req-0", "req-1", "req-2"]
    body = out[0]["response"]["body"]
    assert out[0]["response"]["status_code"] == 200
    assert body["usage"]["prompt_tokens"] > 0


def test_auto_mode_finishes_on_the_second_read(emu, client):
    emu.batch_mode = "auto"
    batch = submit(client)
    assert client.batches.retrieve(batch.id).status == "in_progress"
    assert client.batches.retrieve(batch.id).status == "completed"


def test_per_item_errors_go_to_the_error_file(emu, client):
    emu.plan_next_batch(item_errors=["req-1"], answer_faults={2: Fault.MALFORMED_JSON}, shuffle=True)
    batch = submit(client)
    emu.finish(batch.id)
    done = client.batches.retrieve(batch.id)
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    errors = lines(client, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["req-1"]
    assert errors[0]["response"]["status_code"] == 500
    assert errors[0]["response"]["body"]["error"]["type"] == "server_error"
    malformed = next(o for o in lines(client, done.output_file_id) if o["custom_id"] == "req-2")
    with pytest.raises(ValueError):
        json.loads(malformed["response"]["body"]["choices"][0]["message"]["content"])


@pytest.mark.parametrize("state", ["failed", "expired", "cancelled"])
def test_dead_jobs(emu, client, state):
    emu.plan_next_batch(BatchPlan(final_state=state, expire_after=1))
    batch = submit(client)
    if state == "cancelled":
        assert client.batches.cancel(batch.id).status == "cancelling"
    else:
        emu.finish(batch.id)
    done = client.batches.retrieve(batch.id)
    assert done.status == state
    if state == "failed":
        assert done.errors.data[0].message
        assert done.output_file_id is None
    elif state == "expired":
        assert len(lines(client, done.output_file_id)) == 1
        assert {e["error"]["code"] for e in lines(client, done.error_file_id)} == {"batch_expired"}
    else:
        assert {e["error"]["code"] for e in lines(client, done.error_file_id)} == {"batch_cancelled"}


def test_quota_spent_mid_batch_fails_the_remaining_items(emu, client):
    emu.quota = 1
    batch = submit(client)
    emu.finish(batch.id)
    done = client.batches.retrieve(batch.id)
    errors = lines(client, done.error_file_id)
    assert [e["response"]["status_code"] for e in errors] == [429, 429]
    assert errors[0]["response"]["body"]["error"]["code"] == "insufficient_quota"


def test_list_is_newest_first_and_pages_with_after(emu, client):
    ids = [submit(client, 1).id for _ in range(5)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert first.has_more
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # auto-pagination
    assert client.batches.retrieve(ids[0]).metadata == {"job": "demo"}


def test_batch_create_rejects_wrong_purpose_and_unknown_file(emu, client):
    uploaded = client.files.create(file=("in.jsonl", batch_input(1)), purpose="user_data")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
