"""The Mistral emulator, driven through the real ``mistralai`` SDK (no mocks)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from mistralai.client import Mistral, errors
from support.chat_sdk import MISTRAL_SDK, PROMPT
from support.emulators.mistral import BatchPlan, Fault, MistralEmulator

KEY = MISTRAL_SDK.key
MODEL = MISTRAL_SDK.model


@pytest.fixture(scope="module")
def server() -> Iterator[MistralEmulator]:
    with MistralEmulator(api_keys=[KEY], models=[MODEL], retry_after=0.01) as emu:
        yield emu


@pytest.fixture
def emu(server: MistralEmulator) -> MistralEmulator:
    server.reset()
    server.quota = None
    server.batch_mode = "manual"
    return server


@pytest.fixture(scope="module")
def client(server: MistralEmulator) -> Mistral:
    return Mistral(api_key=KEY, server_url=server.url)


def batch_input(n: int) -> bytes:
    lines = [
        {
            "custom_id": f"req-{i}",
            "body": {"messages": [{"role": "user", "content": f"| issue_id |\n| {i} | x |"}]},
        }
        for i in range(n)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def submit(client: Mistral, n: int = 3, **metadata: str):
    uploaded = client.files.upload(file={"file_name": "in.jsonl", "content": batch_input(n)}, purpose="batch")
    return client.batch.jobs.create(
        input_files=[uploaded.id],
        endpoint="/v1/chat/completions",
        model=MODEL,
        metadata=metadata or {"job": "demo"},
    )


def lines(client: Mistral, file_id) -> list[dict]:
    assert isinstance(file_id, str)
    return [json.loads(line) for line in client.files.download(file_id=file_id).read().splitlines()]


def test_batch_lifecycle_success(emu, client):
    job = submit(client)
    assert job.status == "QUEUED"
    emu.advance(job.id)
    assert client.batch.jobs.get(job_id=job.id).status == "RUNNING"
    emu.advance(job.id)
    done = client.batch.jobs.get(job_id=job.id)
    assert done.status == "SUCCESS"
    assert (done.total_requests, done.succeeded_requests, done.failed_requests) == (3, 3, 0)
    out = lines(client, done.output_file)
    assert sorted(line["custom_id"] for line in out) == ["req-0", "req-1", "req-2"]
    assert out[0]["response"]["body"]["model"] == MODEL


def test_inline_requests_return_outputs_in_the_job(emu, client):
    job = client.batch.jobs.create(
        requests=[{"custom_id": "a", "body": {"messages": [{"role": "user", "content": PROMPT}]}}],
        endpoint="/v1/chat/completions",
        model=MODEL,
    )
    emu.finish(job.id)
    done = client.batch.jobs.get(job_id=job.id)
    assert [o["custom_id"] for o in done.outputs] == ["a"]


def test_per_item_errors(emu, client):
    emu.plan_next_batch(item_errors=[0], answer_faults={"req-2": Fault.MISSING_IDS})
    job = submit(client)
    emu.finish(job.id)
    done = client.batch.jobs.get(job_id=job.id)
    assert (done.succeeded_requests, done.failed_requests) == (2, 1)
    errors_ = lines(client, done.error_file)
    assert [(e["custom_id"], e["response"]["status_code"]) for e in errors_] == [("req-0", 500)]


@pytest.mark.parametrize(
    ("state", "wire"), [("failed", "FAILED"), ("expired", "TIMEOUT_EXCEEDED"), ("cancelled", "CANCELLED")]
)
def test_dead_jobs(emu, client, state, wire):
    emu.plan_next_batch(BatchPlan(final_state=state, expire_after=2))
    job = submit(client)
    if state == "cancelled":
        assert client.batch.jobs.cancel(job_id=job.id).status == "CANCELLATION_REQUESTED"
    else:
        emu.finish(job.id)
    done = client.batch.jobs.get(job_id=job.id)
    assert done.status == wire
    if state == "failed":
        assert done.errors and done.output_file is None
    elif state == "expired":
        assert len(lines(client, done.output_file)) == 2
        assert [e["error"]["code"] for e in lines(client, done.error_file)] == ["expired"]


def test_list_filters_by_status_and_metadata(emu, client):
    first = submit(client, 1, job="a")
    second = submit(client, 1, job="b")
    emu.finish(first.id)
    assert [j.id for j in client.batch.jobs.list(metadata={"job": "b"}).data] == [second.id]
    assert [j.id for j in client.batch.jobs.list(status=["QUEUED", "RUNNING"]).data] == [second.id]
    listed = client.batch.jobs.list()
    assert [j.id for j in listed.data] == [second.id, first.id]
    assert listed.total == 2


def test_unknown_job_and_file_are_404(emu, client):
    with pytest.raises(errors.SDKError) as caught:
        client.batch.jobs.get(job_id="0f6a9c2e-0000-4000-8000-000000000000")
    assert caught.value.status_code == 404
    with pytest.raises(errors.SDKError):
        client.files.download(file_id="0f6a9c2e-0000-4000-8000-000000000000").read()
