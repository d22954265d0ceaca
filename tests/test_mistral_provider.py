"""The mistral provider with the real ``mistralai`` SDK against the loopback Mistral emulator."""

from __future__ import annotations

import json

import pytest
from support.emulators.mistral import BatchPlan, Fault, MistralEmulator
from test_categorise import BATCH

from llm_categoriser.categorise import categorise_batch
from llm_categoriser.errors import ProviderError
from llm_categoriser.providers import get_provider
from llm_categoriser.providers.base import Request
from llm_categoriser.providers.mistral.batch import MistralBatchBackend
from llm_categoriser.providers.mistral.client import MistralProvider, api_key
from llm_categoriser.settings import resolve

FAKE_KEY = "mistral-FAKE-test-key-6a0d93be"
MODEL = "mistral-small-latest"


@pytest.fixture(scope="module")
def emu():
    with MistralEmulator(api_keys=[FAKE_KEY], models=[MODEL], retry_after=0.5) as emulator:
        yield emulator


@pytest.fixture
def settings(emu):
    emu.reset()
    emu.quota = None
    return resolve({"provider": "mistral", "mistral_base_url": emu.url, "max_request_attempts": 3}, env={})


def sleeping(provider):
    provider.sleeps = []
    provider.sleep = provider.sleeps.append
    return provider


@pytest.fixture
def provider(settings):
    return sleeping(MistralProvider(settings, FAKE_KEY))


def test_categorises_a_batch_with_json_output(emu, provider):
    result = categorise_batch(BATCH, provider, max_retries=1)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert (result.provider, result.model, result.requests) == ("mistral", MODEL, 1)
    assert result.input_tokens > 0 and result.output_tokens > 0
    body = json.loads(emu.requests[-1].body)
    assert body["response_format"]["type"] == "json_schema"
    enum = body["response_format"]["json_schema"]["schema"]["properties"]["answers"]["items"]["properties"]
    assert "FALSE_POSITIVE" in enum["error_category"]["enum"]
    assert body["model"] == MODEL and body["temperature"] == 0.2


def test_rate_limit_is_retried_after_the_servers_delay(emu, provider):
    emu.inject(Fault.RATE_LIMIT)
    result = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert provider.sleeps == [0.5]


def test_429_or_5xx_after_the_retries_means_unavailable(emu, provider):
    emu.inject(Fault.SERVER_ERROR, times=None)
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)
    assert caught.value.kind == "unavailable" and "HTTP 500" in str(caught.value)
    emu.clear_faults()
    emu.quota = 0  # Mistral's quota answer is a 429 like its rate limit: retried, then handed over
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)
    assert caught.value.kind == "unavailable" and "HTTP 429" in str(caught.value)
    alone = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in alone.items.values()} == {"failed"}


def test_invalid_key_stops_with_a_message(emu, settings):
    bad = "not-a-mistral-key-000000"
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, sleeping(MistralProvider(settings, bad)), max_retries=0)
    assert caught.value.kind == "fatal" and "MISTRAL_API_KEY" in str(caught.value)
    assert bad not in str(caught.value)


def test_unknown_model_stops_with_a_message(emu, settings):
    other = settings.model_copy(update={"mistral_model": "mistral-none"})
    with pytest.raises(ProviderError, match="mistral_model") as caught:
        categorise_batch(BATCH, sleeping(MistralProvider(other, FAKE_KEY)), max_retries=0)
    assert caught.value.kind == "fatal"


def test_malformed_answers_are_asked_again(emu, provider):
    emu.inject(Fault.MALFORMED_JSON)
    result = categorise_batch(BATCH, provider, max_retries=1)
    assert {v.status for v in result.items.values()} == {"ok"} and result.requests == 2


def test_key_comes_from_mistral_api_key_only():
    assert api_key({"MISTRAL_API_KEY": FAKE_KEY}) == FAKE_KEY
    with pytest.raises(ProviderError, match="MISTRAL_API_KEY"):
        api_key({"OPENAI_API_KEY": "x", "GEMINI_API_KEY": "y"})
    spec = get_provider("mistral")
    assert spec.key_variables == ("MISTRAL_API_KEY",)
    assert spec.model(resolve({"provider": "mistral"}, env={})) == MODEL


def requests(n: int) -> list[Request]:
    return [
        Request(key=f"fp{i}", system="Triage.", user=f"| issue_id |\n| {i} | f |", batch=BATCH, local_ids={i})
        for i in range(n)
    ]


@pytest.fixture
def backend(settings):
    made = MistralBatchBackend(settings, FAKE_KEY)
    sleeping(made.sync_provider)
    return made


def test_batch_lifecycle(emu, backend):
    created = backend.create("llmcat-job-1", requests(3))
    assert not created.adopted and created.file_name
    assert backend.status(created.name).state == "QUEUED"
    emu.advance(created.name)
    assert backend.status(created.name).state == "RUNNING"
    emu.advance(created.name)
    assert backend.status(created.name).state == "SUCCEEDED"
    answers = backend.results(created.name, requests(3))
    assert sorted(answers) == ["fp0", "fp1", "fp2"] and all(a.text for a in answers.values())
    line = json.loads(emu.file_content(created.file_name).splitlines()[0])
    assert line["custom_id"] == "fp0" and "model" not in line["body"]


def test_a_live_job_is_adopted_and_a_lost_create_answer_too(emu, backend):
    first = backend.create("llmcat-job-2", requests(1))
    assert backend.create("llmcat-job-2", requests(1)).name == first.name
    emu.inject(Fault.UNAVAILABLE, path_contains="/v1/batch/jobs", method="POST", after=True)
    lost = backend.create("llmcat-job-3", requests(1))
    assert lost.adopted
    assert emu.stats()["batch_creations"] == 2


@pytest.mark.parametrize(("final", "state"), [("failed", "FAILED"), ("expired", "EXPIRED")])
def test_dead_jobs_are_reported_and_not_adopted(emu, backend, final, state):
    emu.plan_next_batch(BatchPlan(final_state=final))
    first = backend.create("llmcat-job-4", requests(1))
    emu.finish(first.name)
    assert backend.status(first.name).state == state
    assert backend.create("llmcat-job-4", requests(1)).name != first.name


def test_per_item_errors_come_back_as_failed_answers(emu, backend):
    emu.plan_next_batch(BatchPlan(item_errors=[1]))
    created = backend.create("llmcat-job-5", requests(2))
    emu.finish(created.name)
    answers = backend.results(created.name, requests(2))
    assert answers["fp0"].text and answers["fp1"].text is None and "HTTP 500" in answers["fp1"].error


def test_cancel(emu, backend):
    created = backend.create("llmcat-job-6", requests(1))
    backend.cancel(created.name)
    assert backend.status(created.name).state == "CANCELLED"
