"""The OpenAI and Mistral emulators, each driven through its vendor's real SDK (no mocks): what
both emulate alike, as tests over both (each vendor's own wire shapes, its Batch API included, are
in ``test_openai_emulator.py`` and ``test_mistral_emulator.py``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from support.chat_sdk import SCHEMA, SDKS, Sdk
from support.emulators.chat_api import ChatApiEmulator, Fault


@pytest.fixture(scope="module", params=SDKS, ids=str)
def sdk(request: pytest.FixtureRequest) -> Sdk:
    return request.param


@pytest.fixture(scope="module")
def server(sdk: Sdk) -> Iterator[ChatApiEmulator]:
    with sdk.emulator(api_keys=[sdk.key], models=[sdk.model], retry_after=0.01) as emu:
        yield emu


@pytest.fixture
def emu(server: ChatApiEmulator) -> ChatApiEmulator:
    server.reset()
    server.quota = None
    server.batch_mode = "manual"
    return server


@pytest.fixture(scope="module")
def client(sdk: Sdk, server: ChatApiEmulator):
    return sdk.client(server, sdk.key, False)


def test_json_schema_output_wraps_verdicts_and_reports_usage(sdk, emu, client):
    completion = sdk.ask(client, response_format=SCHEMA)
    assert [v["issue_id"] for v in json.loads(completion.choices[0].message.content)["answers"]] == [0, 1, 2]
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_json_object_mode_answers_a_bare_array(sdk, emu, client):
    completion = sdk.ask(client, response_format={"type": "json_object"})
    assert isinstance(json.loads(completion.choices[0].message.content), list)


def test_rate_limit_is_retried_by_the_sdk_when_configured(sdk, emu):
    emu.inject(Fault.RATE_LIMIT, times=2)
    assert sdk.ask(sdk.client(emu, sdk.key, True)).choices[0].message.content
    assert emu.stats()["status_counts"] == {"429": 2, "200": 1}


def test_rate_limit_without_retries_raises_429_with_retry_after(sdk, emu, client):
    emu.inject(Fault.RATE_LIMIT)
    with pytest.raises(sdk.raises(429)) as caught:
        sdk.ask(client)
    assert caught.value.status_code == 429
    assert sdk.code(caught.value) == sdk.rate_limit_code
    header, value = sdk.retry_header
    assert sdk.headers(caught.value)[header] == value


def test_quota_runs_out_after_n_answers(sdk, emu, client):
    emu.quota = 2
    sdk.ask(client)
    sdk.ask(client)
    with pytest.raises(sdk.raises(429)) as caught:
        sdk.ask(client)
    assert caught.value.status_code == 429
    assert sdk.code(caught.value) == sdk.quota_code
    assert emu.stats()["answers"] == 2


@pytest.mark.parametrize(("fault", "status"), [(Fault.SERVER_ERROR, 500), (Fault.UNAVAILABLE, 503)])
def test_server_errors(sdk, emu, client, fault, status):
    emu.inject(fault)
    with pytest.raises(sdk.raises(status)) as caught:
        sdk.ask(client)
    assert caught.value.status_code == status
    assert sdk.ask(client).choices


def test_invalid_key_is_401_without_the_key(sdk, emu):
    bad = "not-a-real-key-99999999"
    with pytest.raises(sdk.raises(401)) as caught:
        sdk.ask(sdk.client(emu, bad, False))
    assert caught.value.status_code == 401
    assert bad not in str(caught.value)
    if sdk.invalid_key_code is not None:
        assert sdk.code(caught.value) == sdk.invalid_key_code


def test_unknown_model_is_refused(sdk, emu, client):
    model, status, code = sdk.unknown_model
    with pytest.raises(sdk.raises(status)) as caught:
        sdk.ask(client, model=model)
    assert caught.value.status_code == status
    assert sdk.code(caught.value) == code


@pytest.mark.parametrize(
    "fault", [Fault.MALFORMED_JSON, Fault.TRUNCATED_JSON, Fault.MISSING_IDS, Fault.UNKNOWN_IDS]
)
def test_answer_faults(sdk, emu, client, fault):
    emu.inject(fault)
    completion = sdk.ask(client, response_format=SCHEMA)
    text = completion.choices[0].message.content
    if fault == Fault.MALFORMED_JSON:
        with pytest.raises(ValueError):
            json.loads(text)
    elif fault == Fault.TRUNCATED_JSON:
        assert completion.choices[0].finish_reason == "length"
    else:
        ids = [v["issue_id"] for v in json.loads(text)["answers"]]
        assert ids == ([0, 1] if fault == Fault.MISSING_IDS else [0, 1, 2, 1002])
    assert json.loads(sdk.ask(client, response_format=SCHEMA).choices[0].message.content)["answers"]


def test_requests_are_recorded_for_secret_greps(sdk, emu, client):
    sdk.ask(client)
    assert emu.find_requests(sdk.key)  # the key travels in the Authorization header
    assert not emu.find_requests("never-sent-" + str(time.time()))
