"""The provider chain with two real SDKs against two loopback emulators: the first runs out of
quota mid-run, the second answers the rest; answers are cached per provider and model."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from support.emulators.mistral import MistralEmulator
from support.emulators.openai import Fault, OpenAIEmulator
from test_categorise import BATCH

from llm_categoriser import fallback, spending
from llm_categoriser.answers import load_answer
from llm_categoriser.categorise import categorise_part
from llm_categoriser.costs.prices import CataloguePrices
from llm_categoriser.costs.usage import TokenUsage
from llm_categoriser.errors import ProviderError
from llm_categoriser.fallback import ProviderChain
from llm_categoriser.layout import Layout
from llm_categoriser.remote_jobs import create_job
from llm_categoriser.settings import resolve

OPENAI_KEY = "sk-FAKE-fallback-openai-5b1e"
MISTRAL_KEY = "FAKE-fallback-mistral-93c0"


@pytest.fixture
def emulators(monkeypatch):
    fallback.forget_spent()
    with OpenAIEmulator(api_keys=[OPENAI_KEY]) as first, MistralEmulator(api_keys=[MISTRAL_KEY]) as second:
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("MISTRAL_API_KEY", MISTRAL_KEY)
        yield first, second
    fallback.forget_spent()


def settings_for(first, second, **extra):
    config = {
        "provider": "openai",
        "fallback": "mistral",
        "openai_base_url": first.url,
        "mistral_base_url": second.url,
        "max_request_attempts": 2,
        **extra,
    }
    return resolve(config, env={})


def part(n: int):
    return [BATCH.model_copy(update={"batch_id": f"b{i}", "fingerprint": f"f{i}"}) for i in range(n)]


def test_quota_spent_mid_run_hands_the_rest_to_the_next_provider(tmp_path, emulators, caplog):
    first, second = emulators
    first.quota = 3
    settings = settings_for(first, second)
    layout = Layout("Documents", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        results, reused = categorise_part(part(8), ProviderChain.of(settings), layout, max_retries=0)
    assert reused == 0
    assert [r.provider for r in results] == ["openai"] * 3 + ["mistral"] * 5
    assert [r.model for r in results][-1] == "mistral-small-latest"
    assert {item.status for r in results for item in r.items.values()} == {"ok"}
    assert first.stats()["chat_completions"] == 4  # three answers, one refusal, then never again
    assert second.stats()["chat_completions"] == 5
    assert "provider openai is spent" in caplog.text and "mistral takes over" in caplog.text
    # the cache keeps each answer under its own provider's fingerprint
    assert load_answer(layout, "f0") is not None and load_answer(layout, "f5") is None
    assert all(load_answer(layout, r.fingerprint) is not None for r in results)
    assert {r.fingerprint for r in results[3:]}.isdisjoint({f"f{i}" for i in range(8)})
    # a rerun finds every answer, whoever gave it, without a request
    fallback.forget_spent()
    again, reused = categorise_part(part(8), ProviderChain.of(settings), layout, max_retries=0)
    assert reused == 8 and [r.provider for r in again] == [r.provider for r in results]
    assert first.stats()["chat_completions"] == 4 and second.stats()["chat_completions"] == 5


def test_each_answer_is_priced_by_the_provider_and_model_that_gave_it(tmp_path, emulators, monkeypatch):
    first, second = emulators
    first.quota = 2
    monkeypatch.chdir(tmp_path)
    settings = settings_for(first, second)
    meter = spending.meter(settings)
    layout = Layout("Documents", str(tmp_path))
    results, _ = categorise_part(part(5), ProviderChain.of(settings), layout, max_retries=0, meter=meter)
    assert [r.provider for r in results] == ["openai"] * 2 + ["mistral"] * 3
    for result in results:
        usage = TokenUsage(input_tokens=result.input_tokens, output_tokens=result.output_tokens)
        assert usage.input_tokens > 0 and result.cost_usd is not None and result.cost_usd > 0
        own = CataloguePrices(result.provider).pricing(result.model, batch=False).cost(usage)
        other = "openai" if result.provider == "mistral" else "mistral"
        theirs = CataloguePrices(other).pricing(settings_for_model(other), batch=False).cost(usage)
        assert result.cost_usd == pytest.approx(float(own)) and own != theirs
    assert meter.ledger is not None
    assert meter.ledger.spent() == pytest.approx(Decimal(str(sum(r.cost_usd or 0 for r in results))))


def settings_for_model(provider: str) -> str:
    return {"openai": "gpt-4.1-mini", "mistral": "mistral-small-latest"}[provider]


def test_5xx_after_the_retries_falls_back_too(tmp_path, emulators):
    first, second = emulators
    first.inject(Fault.UNAVAILABLE, times=None)
    settings = settings_for(first, second)
    chain = ProviderChain.of(settings)
    for link in chain.links:
        link.provider().sleep = lambda seconds: None
    results, _ = categorise_part(part(2), chain, Layout("Documents", str(tmp_path)), max_retries=0)
    assert [r.provider for r in results] == ["mistral", "mistral"]
    assert first.stats()["chat_completions"] == 2  # two attempts for the first batch only


def test_an_invalid_key_does_not_fall_back(tmp_path, emulators, monkeypatch):
    first, second = emulators
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-123456789")
    settings = settings_for(first, second)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY") as caught:
        layout = Layout("Documents", str(tmp_path))
        categorise_part(part(1), ProviderChain.of(settings), layout, max_retries=0)
    assert caught.value.kind == "fatal"
    assert second.stats()["chat_completions"] == 0


def test_the_last_provider_unavailable_fails_the_flags_and_spent_ends_the_job(tmp_path, emulators):
    first, second = emulators
    first.quota = second.quota = 0
    layout = Layout("Documents", str(tmp_path))

    def quiet(chain: ProviderChain) -> ProviderChain:
        for link in chain.links:
            link.provider().sleep = lambda seconds: None
        return chain

    results, _ = categorise_part(part(1), quiet(ProviderChain.of(settings_for(first, second))), layout, 0)
    assert results[0].provider == "mistral"
    assert {v.status for v in results[0].items.values()} == {"failed"}  # asked again next run
    fallback.forget_spent()
    backwards = settings_for(first, second).model_copy(
        update={"provider": "mistral", "fallback": ("openai",)}
    )
    with pytest.raises(ProviderError) as caught:
        categorise_part(part(1), quiet(ProviderChain.of(backwards)), layout, max_retries=0)
    assert caught.value.kind == "exhausted" and "insufficient_quota" in str(caught.value)


def test_a_batch_job_that_cannot_be_created_goes_to_the_next_provider(emulators):
    first, second = emulators
    first.inject(Fault.QUOTA, path_contains="/v1/batches", method="POST")
    settings = settings_for(first, second, mode="batch")
    from llm_categoriser.remote_jobs import first_request

    requests = [first_request(BATCH)]
    created, provider, model, cost = create_job(
        "llmcat-j-1", requests, settings, None, logging.getLogger(), "j"
    )
    assert (provider, model) == ("mistral", "mistral-small-latest")
    # the job's estimate is at the batch rates of the provider that took it
    mistral = fallback.settings_for(settings, "mistral")
    assert cost is not None and cost == spending.expected_cost(mistral, requests, batch=True)
    assert cost != spending.expected_cost(settings, requests, batch=True)
    assert first.stats()["batch_creations"] == 0 and second.stats()["batch_creations"] == 1
    assert created.name in second.job_ids()


def test_planning_checks_the_key_of_every_provider_of_the_chain(monkeypatch):
    from llm_categoriser.providers import check_ready

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MISTRAL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with pytest.raises(ProviderError, match="provider mistral needs an API key: export MISTRAL_API_KEY"):
        check_ready(resolve({"provider": "openai", "fallback": "mistral"}, env={}))
    monkeypatch.delenv("OPENAI_API_KEY")
    check_ready(resolve({"provider": "openai", "openai_base_url": "http://127.0.0.1:8000/v1"}, env={}))
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        check_ready(resolve({"provider": "openai"}, env={}))
