"""The openai and mistral providers with their real SDKs (``openai``, ``mistralai``) against the
loopback emulators: one table of what differs between the two vendors, the shared behaviour as
tests over both, and each vendor's own behaviour (quota, keys, local servers) after them."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from support.emulators.chat_api import BatchPlan, ChatApiEmulator, Fault
from support.emulators.mistral import MistralEmulator
from support.emulators.openai import OpenAIEmulator
from test_categorise import BATCH

from llm_categoriser.categorise import categorise_batch
from llm_categoriser.errors import ProviderError
from llm_categoriser.limits import limiter_for
from llm_categoriser.providers import get_provider
from llm_categoriser.providers.base import Request
from llm_categoriser.providers.mistral import client as mistral_client
from llm_categoriser.providers.mistral.batch import MistralBatchBackend
from llm_categoriser.providers.mistral.client import MistralProvider
from llm_categoriser.providers.openai import client as openai_client
from llm_categoriser.providers.openai.batch import OpenAIBatchBackend
from llm_categoriser.providers.openai.client import NO_KEY, OpenAIProvider
from llm_categoriser.settings import Settings, resolve


@dataclass(frozen=True)
class Vendor:
    """What differs between the two chat-completion vendors, as the tests see it."""

    name: str
    emulator: type[ChatApiEmulator]
    provider: type[Any]
    backend: type[Any]
    key: str
    bad_key: str
    model: str
    unknown_model: str
    retry_after: float
    lost_create_fault: str  # the 5xx that loses the answer to a batch creation
    extra_body: tuple[tuple[str, Any], ...]  # request fields only this vendor's provider sends

    def __str__(self) -> str:
        return self.name

    @property
    def key_variable(self) -> str:
        return f"{self.name.upper()}_API_KEY"

    def settings(self, emu: ChatApiEmulator) -> Settings:
        config = {"provider": self.name, f"{self.name}_base_url": emu.url, "max_request_attempts": 3}
        return resolve(config, env={})


OPENAI = Vendor(
    name="openai",
    emulator=OpenAIEmulator,
    provider=OpenAIProvider,
    backend=OpenAIBatchBackend,
    key="sk-openai-FAKE-test-key-31f8c2d7",
    bad_key="sk-not-valid-0000000000000000",
    model="gpt-4.1-mini",
    unknown_model="gpt-0",
    retry_after=0.25,
    lost_create_fault=Fault.SERVER_ERROR,
    extra_body=(),
)
MISTRAL = Vendor(
    name="mistral",
    emulator=MistralEmulator,
    provider=MistralProvider,
    backend=MistralBatchBackend,
    key="mistral-FAKE-test-key-6a0d93be",
    bad_key="not-a-mistral-key-000000",
    model="mistral-small-latest",
    unknown_model="mistral-none",
    retry_after=0.5,
    lost_create_fault=Fault.UNAVAILABLE,
    extra_body=(("temperature", 0.2),),
)
VENDORS = [OPENAI, MISTRAL]


@pytest.fixture(scope="module", params=VENDORS, ids=str)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    return request.param


@pytest.fixture(scope="module")
def emu(vendor: Vendor):
    with vendor.emulator(
        api_keys=[vendor.key], models=[vendor.model], retry_after=vendor.retry_after
    ) as emulator:
        yield emulator


@pytest.fixture
def settings(vendor: Vendor, emu: ChatApiEmulator) -> Settings:
    emu.reset()
    emu.quota = None
    emu.require_key = True
    emu.api_keys = frozenset({vendor.key})
    return vendor.settings(emu)


def sleeping(provider):
    provider.sleeps = []
    provider.sleep = provider.sleeps.append
    return provider


@pytest.fixture
def provider(vendor: Vendor, settings: Settings):
    return sleeping(vendor.provider(settings, vendor.key))


def only(vendor: Vendor):
    """Run a test with one vendor only (its behaviour is that vendor's own)."""
    return pytest.mark.parametrize("vendor", [vendor], indirect=True, ids=str)


# -- what both vendors do --------------------------------------------------------------------


def test_categorises_a_batch_with_structured_output(vendor, emu, provider):
    result = categorise_batch(BATCH, provider, max_retries=1)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert (result.provider, result.model, result.requests) == (vendor.name, vendor.model, 1)
    assert result.input_tokens > 0 and result.output_tokens > 0
    body = json.loads(emu.requests[-1].body)
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    verdict = schema["properties"]["answers"]["items"]
    assert "FALSE_POSITIVE" in verdict["properties"]["error_category"]["enum"]
    assert body["response_format"]["json_schema"]["strict"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["model"] == vendor.model
    assert all(body[name] == value for name, value in vendor.extra_body)


def test_rate_limit_is_retried_after_the_servers_delay(vendor, emu, provider):
    emu.inject(Fault.RATE_LIMIT, times=2)
    started = time.monotonic()
    result = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert time.monotonic() - started >= 2 * vendor.retry_after
    assert provider.sleeps == []  # the process's request limiter waited, not this request alone
    assert provider.limiter.stats.rate_limited == 2


def test_a_429_pauses_every_sender_of_the_process_and_slows_it_down(vendor, emu, settings, monkeypatch):
    monkeypatch.setattr(emu, "retry_after", 1.0)
    first, second = (sleeping(vendor.provider(settings, vendor.key)) for _ in range(2))  # two jobs
    assert first.limiter is second.limiter is limiter_for(settings)
    emu.inject(Fault.RATE_LIMIT, path_contains="/chat/")  # the first request only
    results = []
    started = time.monotonic()
    job = threading.Thread(
        target=lambda: results.append(categorise_batch(BATCH, first, 0, limiter=first.limiter))
    )
    job.start()
    while first.limiter.stats.rate_limited == 0 and job.is_alive():
        time.sleep(0.01)
    other = categorise_batch(BATCH, second, 0, limiter=second.limiter)  # no 429 of its own
    other_done = time.monotonic() - started
    job.join()
    assert [item.status for r in (*results, other) for item in r.items.values()] == ["ok"] * 2 * len(
        BATCH.flags
    )
    assert other_done >= 1.0  # it waited for the pause the other job's 429 started
    assert first.sleeps == second.sleeps == []
    assert first.limiter.stats.rate_limited == 1 and first.limiter.pace is not None  # slowed down
    assert emu.stats()["chat_completions"] == 3  # the 429, its retry, the other job's request


def test_5xx_is_retried_with_backoff(emu, provider):
    emu.inject(Fault.UNAVAILABLE)
    emu.inject(Fault.SERVER_ERROR)
    result = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in result.items.values()} == {"ok"}
    assert len(provider.sleeps) == 2 and all(s > 0 for s in provider.sleeps)


def test_5xx_after_the_retries_means_unavailable(emu, provider):
    emu.inject(Fault.SERVER_ERROR, times=None)
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)
    assert caught.value.kind == "unavailable" and "HTTP 500" in str(caught.value)
    alone = categorise_batch(BATCH, provider, max_retries=0)  # no provider to take over
    assert {v.status for v in alone.items.values()} == {"failed"}


def test_429_after_the_retries_means_unavailable(emu, provider):
    emu.inject(Fault.RATE_LIMIT, times=None)
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)
    assert caught.value.kind == "unavailable" and "429" in str(caught.value)
    assert emu.stats()["chat_completions"] == 3
    alone = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in alone.items.values()} == {"failed"}
    assert all("429" in v.error for v in alone.items.values())


def test_invalid_key_stops_with_a_message_without_the_key(vendor, emu, settings):
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, sleeping(vendor.provider(settings, vendor.bad_key)), max_retries=0)
    assert caught.value.kind == "fatal"
    assert vendor.key_variable in str(caught.value)
    assert vendor.bad_key not in str(caught.value) and vendor.bad_key[-4:] not in str(caught.value)


def test_unknown_model_stops_with_a_message(vendor, emu, settings):
    other = settings.model_copy(update={f"{vendor.name}_model": vendor.unknown_model})
    with pytest.raises(ProviderError, match=f"{vendor.name}_model") as caught:
        categorise_batch(BATCH, sleeping(vendor.provider(other, vendor.key)), max_retries=0)
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


def test_the_spec_names_model_and_key(vendor):
    spec = get_provider(vendor.name)
    assert spec.key_variables == (vendor.key_variable,)
    assert spec.model(resolve({"provider": vendor.name}, env={})) == vendor.model
    custom = resolve({"provider": vendor.name, f"{vendor.name}_model": "my-model"}, env={})
    assert spec.model(custom) == "my-model"
    assert "temperature" in spec.fingerprint(custom)


# -- the Batch API of both vendors -----------------------------------------------------------


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
def backend(vendor: Vendor, settings: Settings):
    made = vendor.backend(settings, vendor.key)
    sleeping(made.sync_provider)
    return made


def test_batch_lifecycle(vendor, emu, backend):
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
    input_file = emu._jobs[created.name].input_file_ids[0]
    assert created.file_name == input_file
    line = json.loads(emu.file_content(input_file).splitlines()[0])
    assert line["custom_id"] == "fp0" and line["body"]["response_format"]["type"] == "json_schema"
    # OpenAI names the model on every line; Mistral once, on the job
    assert ("model" in line["body"]) == (vendor is OPENAI)


def test_a_live_job_is_adopted_not_duplicated(emu, backend):
    first = backend.create("llmcat-job-2", requests(2))
    again = backend.create("llmcat-job-2", requests(2))
    assert again.adopted and again.name == first.name
    assert emu.stats()["batch_creations"] == 1


def test_a_lost_create_answer_adopts_the_job_it_made(vendor, emu, backend):
    emu.inject(vendor.lost_create_fault, path_contains=emu.batch_path, method="POST", after=True)
    created = backend.create("llmcat-job-3", requests(1))
    assert created.adopted
    assert emu.stats()["batch_creations"] == 1
    assert emu.stats()["status_counts"][str(emu.http_fault(vendor.lost_create_fault).status)] == 1


@pytest.mark.parametrize(("final", "state"), [("failed", "FAILED"), ("expired", "EXPIRED")])
def test_a_dead_job_is_reported_and_not_adopted(emu, backend, final, state):
    emu.plan_next_batch(BatchPlan(final_state=final))
    first = backend.create("llmcat-job-4", requests(1))
    emu.finish(first.name)
    assert backend.status(first.name).state == state
    again = backend.create("llmcat-job-4", requests(1))
    assert not again.adopted and again.name != first.name


def test_failed_jobs_report_their_error(emu, backend):
    emu.plan_next_batch(BatchPlan(final_state="failed", error_message="Bad input line 3."))
    created = backend.create("llmcat-job-5", requests(1))
    emu.finish(created.name)
    status = backend.status(created.name)
    assert (status.state, status.error) == ("FAILED", "Bad input line 3.")


@pytest.mark.parametrize("addressed", ["custom_id", "position"])
def test_per_item_errors_come_back_as_failed_answers(emu, backend, addressed):
    failing, faulty = ("fp1", "fp2") if addressed == "custom_id" else (1, 2)
    emu.plan_next_batch(BatchPlan(item_errors=[failing], answer_faults={faulty: Fault.MISSING_IDS}))
    created = backend.create("llmcat-job-6", requests(3))
    emu.finish(created.name)
    answers = backend.results(created.name, requests(3))
    assert answers["fp0"].text and answers["fp2"].text is not None
    assert answers["fp1"].text is None and "HTTP 500" in answers["fp1"].error


def test_cancel(emu, backend):
    created = backend.create("llmcat-job-8", requests(1))
    backend.cancel(created.name)
    assert backend.status(created.name).state == "CANCELLED"


# -- what only one vendor does ---------------------------------------------------------------


@only(OPENAI)
def test_openai_usage_fields_are_complete(provider):
    system = "Categories. " * 600  # long enough for the prompt cache
    request = Request(key="k", system=system, user="| issue_id |\n| 0 | x |", batch=BATCH, local_ids={0})
    provider.generate(request)
    answer = provider.generate(request)
    assert answer.cached_tokens >= 1024
    assert answer.input_tokens > answer.cached_tokens
    assert answer.output_tokens > 0 and answer.thinking_tokens == 0


@only(OPENAI)
def test_openai_429_says_how_many_attempts(emu, provider):
    emu.inject(Fault.RATE_LIMIT, times=None)
    with pytest.raises(ProviderError, match=r"3 attempt\(s\)"):
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)


@only(OPENAI)
def test_openai_spent_quota_is_not_retried(emu, provider):
    emu.quota = 0
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0)
    assert caught.value.kind == "exhausted"
    assert "insufficient_quota" in str(caught.value)
    assert emu.stats()["chat_completions"] == 1 and provider.sleeps == []


@only(MISTRAL)
def test_mistral_spent_quota_is_retried_then_handed_over(emu, provider):
    emu.quota = 0  # Mistral's quota answer is a 429 like its rate limit: retried, then handed over
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)
    assert caught.value.kind == "unavailable" and "HTTP 429" in str(caught.value)
    alone = categorise_batch(BATCH, provider, max_retries=0)
    assert {v.status for v in alone.items.values()} == {"failed"}


@only(OPENAI)
def test_openai_an_unreachable_server_means_unavailable(settings):
    gone = settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1", "request_timeout": 2.0})
    provider = sleeping(OpenAIProvider(gone, OPENAI.key))
    with pytest.raises(ProviderError) as caught:
        categorise_batch(BATCH, provider, max_retries=0, raise_unavailable=True)
    assert caught.value.kind == "unavailable" and "unreachable" in str(caught.value)


@only(OPENAI)
def test_openai_key_comes_from_openai_api_key_only_and_a_local_server_needs_none(emu, settings):
    api_key = openai_client.api_key
    assert api_key(settings, {"OPENAI_API_KEY": OPENAI.key}) == OPENAI.key
    assert api_key(settings, {}) == NO_KEY  # a base URL is configured
    bare = settings.model_copy(update={"openai_base_url": None})
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        api_key(bare, {"GEMINI_API_KEY": "x"})
    assert api_key(bare, {"OPENAI_BASE_URL": emu.url}) == NO_KEY
    emu.require_key = False
    emu.api_keys = None
    local = sleeping(OpenAIProvider(settings, api_key(settings, {})))
    result = categorise_batch(BATCH, local, max_retries=0)
    assert {v.status for v in result.items.values()} == {"ok"}


def test_mistral_key_comes_from_mistral_api_key_only():
    assert mistral_client.api_key({"MISTRAL_API_KEY": MISTRAL.key}) == MISTRAL.key
    with pytest.raises(ProviderError, match="MISTRAL_API_KEY"):
        mistral_client.api_key({"OPENAI_API_KEY": "x", "GEMINI_API_KEY": "y"})


@only(OPENAI)
def test_openai_quota_spent_at_create_means_spent(emu, backend):
    emu.inject(Fault.QUOTA, path_contains="/v1/batches")
    with pytest.raises(ProviderError) as caught:
        backend.create("llmcat-job-7", requests(1))
    assert caught.value.kind == "exhausted"
    assert emu.stats()["batch_creations"] == 0
