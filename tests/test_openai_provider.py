"""The openai provider with the real ``openai`` SDK against the loopback OpenAI emulator."""

from __future__ import annotations

import json

import pytest
from support.emulators.openai import BatchPlan, Fault, OpenAIEmulator
from test_categorise import BATCH

from llm_categoriser.categorise import categorise_batch
from llm_categoriser.errors import ProviderError
from llm_categoriser.providers import get_provider
from llm_categoriser.providers.base import Request
from llm_categoriser.providers.openai.batch import OpenAIBatchBackend
from llm_categoriser.providers.openai.client import NO_KEY, OpenAIProvider, api_key
from llm_categoriser.settings import resolve

FAKE_KEY = "sk-openai-FAKE-test-key-31f8c2d7"
MODEL = "gpt-4.1-mini"


@pytest.fixture(scope="module")
def emu():
    with OpenAIEmulator(api_keys=[FAKE_KEY], models=[MODEL], retry_after=0.25) as emulator:
        yield emulator


@pytest.fixture
def settings(emu):
    emu.reset()
    emu.quota = None
    emu.require_key = True
    return resolve({"provider": "openai", "openai_base_url": emu.url, "max_request_attempts": 3}, env={})


def sleeping(provider):
    provider.sleeps = []
    provider.sleep = provider.sleeps.append
    return provider


@pytest.fixture
def provider(settings):
    return sleeping(OpenAIProvider(settings, FAKE_KEY))


def test_categorises_a_batch_with_structured_output(emu, provider):
    result = categorise_batch(BATCH, provider, max_retries=1)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert (result.provider, result.model, result.requests) == ("openai", MODEL, 1)
    assert result.input_tokens > 0 and result.output_tokens > 0
    body = json.loads(emu.requests[-1].body)
    schema = body["response_format"]["json_schema"]["schema"]
    verdict = schema["properties"]["answers"]["items"]
    assert "FALSE_POSITIVE" in verdict["properties"]["error_category"]["enum"]
    assert body["response_format"]["json_schema"]["strict"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["model"] == MODEL


def test_usage_fields_are_complete(emu, provider):
    system = "Categories. " * 600  # long enough for the prompt cache
    request = Request(key="k", system=system, user="| issue_id |\n| 0 | x |", batch=BATCH, local_ids={0})
    provider.generate(request)
    answer = provider.generate(request)
    assert answer.cached_tokens >= 1024
    assert answer.input_tokens > answer.cached_tokens
    assert answer.output_tokens > 0 and answer.thinking_tokens == 0


def test_rate_limit_is_retried_after_the_servers_delay(emu, provider):
    emu.inject(Fault.RATE_LIMIT, times=2)
    result = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert provider.sleeps == [0.25, 0.25]


def test_5xx_is_retried_with_backoff(emu, provider):
    emu.inject(Fault.UNAVAILABLE)
    emu.inject(Fault.SERVER_ERROR)
    result = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert len(provider.sleeps) == 2 and all(s > 0 for s in provider.sleeps)


def test_429_after_the_retries_means_unavailable(emu, provider):
    emu.inject(Fault.RATE_LIMIT, times=None)
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)
    assert caught.value.kind == "unavailable"
    assert "3 attempt(s)" in str(caught.value) and "429" in str(caught.value)
    assert emu.stats()["chat_completions"] == 3
    alone = categorise_batch(BATCH, provider, max_retries=0)  # no provider to take over
    assert {v.status for v in alone.items.values()} == {"failed"}
    assert all("429" in v.error for v in alone.items.values())


def test_spent_quota_is_not_retried(emu, provider):
    emu.quota = 0
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0)
    assert caught.value.kind == "exhausted"
    assert "insufficient_quota" in str(caught.value)
    assert emu.stats()["chat_completions"] == 1 and provider.sleeps == []


def test_an_unreachable_server_means_unavailable(settings):
    gone = settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1", "request_timeout": 2.0})
    provider = sleeping(OpenAIProvider(gone, FAKE_KEY))
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)
    assert caught.value.kind == "unavailable" and "unreachable" in str(caught.value)


def test_invalid_key_stops_with_a_message_without_the_key(emu, settings):
    bad = "sk-not-valid-0000000000000000"
    provider = sleeping(OpenAIProvider(settings, bad))
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0)
    assert caught.value.kind == "fatal"
    assert "OPENAI_API_KEY" in str(caught.value)
    assert bad not in str(caught.value) and bad[-4:] not in str(caught.value)


def test_unknown_model_stops_with_a_message(emu, settings):
    other = settings.model_copy(update={"openai_model": "gpt-0"})
    with pytest.raises(ProviderError, match="openai_model") as caught:
        categorise_batch(BATCH, sleeping(OpenAIProvider(other, FAKE_KEY)), max_retries=0)
    assert caught.value.kind == "fatal"


def test_malformed_answers_are_asked_again(emu, provider):
    emu.inject(Fault.MALFORMED_JSON)
    result = categorise_batch(BATCH, provider, max_retries=1)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert result.requests == 2


def test_missing_ids_are_asked_again_alone(emu, provider):
    emu.inject(Fault.MISSING_IDS)
    result = categorise_batch(BATCH, provider, max_retries=1)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert "| 0 |" not in json.loads(emu.requests[-1].body)["messages"][1]["content"].split("issue_id")[1]


def test_key_comes_from_openai_api_key_only_and_a_local_server_needs_none(emu, settings):
    assert api_key(settings, {"OPENAI_API_KEY": FAKE_KEY}) == FAKE_KEY
    assert api_key(settings, {}) == NO_KEY  # a base URL is configured
    bare = settings.model_copy(update={"openai_base_url": None})
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        api_key(bare, {"GEMINI_API_KEY": "x"})
    assert api_key(bare, {"OPENAI_BASE_URL": emu.url}) == NO_KEY
    emu.require_key = False
    emu.api_keys, saved = None, emu.api_keys
    try:
        local = sleeping(OpenAIProvider(settings, api_key(settings, {})))
        result = categorise_batch(BATCH, local, max_retries=0)
    finally:
        emu.api_keys = saved
    assert {v.status for v in result.items.values()} == {"ok"}


def test_the_spec_names_model_key_and_fingerprint():
    spec = get_provider("openai")
    settings = resolve({"provider": "openai", "openai_model": "my-local-model"}, env={})
    assert spec.model(settings) == "my-local-model"
    assert spec.key_variables == ("OPENAI_API_KEY",)
    assert "temperature" in spec.fingerprint(settings)


# -- the Batch API ---------------------------------------------------------------------------


def requests(n: int) -> list[Request]:
    return [
        Request(
            key=f"fp{i}",
            system="Triage.",
            user=f"| issue_id |\n| --- |\n| {i} | flag {i} |",
            batch=BATCH,
            local_ids={i},
        )
        for i in range(n)
    ]


@pytest.fixture
def backend(settings):
    made = OpenAIBatchBackend(settings, FAKE_KEY)
    sleeping(made.sync_provider)
    return made


def test_batch_lifecycle(emu, backend):
    created = backend.create("llmcat-job-1", requests(3))
    assert not created.adopted and created.transport == "file" and created.payload_bytes > 0
    assert backend.status(created.name).state == "QUEUED"
    emu.advance(created.name)
    assert backend.status(created.name).state == "RUNNING"
    emu.advance(created.name)
    assert backend.status(created.name).state == "SUCCEEDED"
    answers = backend.results(created.name, requests(3))
    assert sorted(answers) == ["fp0", "fp1", "fp2"]
    assert all(a.text and a.input_tokens for a in answers.values())
    line = json.loads(emu.file_content(emu._jobs[created.name].input_file_ids[0]).splitlines()[0])
    assert line["custom_id"] == "fp0" and line["body"]["response_format"]["type"] == "json_schema"


def test_a_live_job_is_adopted_not_duplicated(emu, backend):
    first = backend.create("llmcat-job-2", requests(2))
    again = backend.create("llmcat-job-2", requests(2))
    assert again.adopted and again.name == first.name
    assert emu.stats()["batch_creations"] == 1


def test_a_lost_create_answer_adopts_the_job_it_made(emu, backend):
    emu.inject(Fault.SERVER_ERROR, path_contains="/v1/batches", method="POST", after=True)
    created = backend.create("llmcat-job-3", requests(1))
    assert created.adopted
    assert emu.stats()["batch_creations"] == 1
    assert emu.stats()["status_counts"]["500"] == 1


def test_a_dead_job_is_not_adopted(emu, backend):
    emu.plan_next_batch(BatchPlan(final_state="expired"))
    first = backend.create("llmcat-job-4", requests(1))
    emu.finish(first.name)
    assert backend.status(first.name).state == "EXPIRED"
    again = backend.create("llmcat-job-4", requests(1))
    assert not again.adopted and again.name != first.name


def test_failed_jobs_report_their_error(emu, backend):
    emu.plan_next_batch(BatchPlan(final_state="failed", error_message="Bad input line 3."))
    created = backend.create("llmcat-job-5", requests(1))
    emu.finish(created.name)
    status = backend.status(created.name)
    assert (status.state, status.error) == ("FAILED", "Bad input line 3.")


def test_per_item_errors_come_back_as_failed_answers(emu, backend):
    emu.plan_next_batch(BatchPlan(item_errors=["fp1"], answer_faults={"fp2": Fault.MISSING_IDS}))
    created = backend.create("llmcat-job-6", requests(3))
    emu.finish(created.name)
    answers = backend.results(created.name, requests(3))
    assert answers["fp0"].text and answers["fp2"].text is not None
    assert answers["fp1"].text is None and "HTTP 500" in answers["fp1"].error


def test_quota_spent_at_create_means_spent(emu, backend):
    emu.inject(Fault.QUOTA, path_contains="/v1/batches")
    with pytest.raises(ProviderError) as caught:
        backend.create("llmcat-job-7", requests(1))
    assert caught.value.kind == "exhausted"
    assert emu.stats()["batch_creations"] == 0


def test_cancel(emu, backend):
    created = backend.create("llmcat-job-8", requests(1))
    backend.cancel(created.name)
    assert backend.status(created.name).state == "CANCELLED"
