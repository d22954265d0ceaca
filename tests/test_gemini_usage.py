"""Gemini's usage metadata (prompt, output, thinking tokens) priced per request, through the real
SDK against the loopback emulator."""

from __future__ import annotations

import pytest
from support.emulators.gemini import GeminiEmulator, count_tokens
from test_categorise import BATCH

from llm_categoriser.categorise import categorise_batch
from llm_categoriser.costs.ledger import SpendLedger
from llm_categoriser.costs.meter import SpendMeter
from llm_categoriser.costs.prices import CataloguePrices
from llm_categoriser.prompts import load_templates, render_user
from llm_categoriser.providers.gemini.client import GeminiProvider
from llm_categoriser.settings import resolve


@pytest.fixture(scope="module")
def emu():
    with GeminiEmulator() as emulator:
        yield emulator


@pytest.mark.parametrize(
    ("budget", "model", "rates"),
    [(0, "gemini-2.5-flash", (0.30, 2.50)), (128, "gemini-2.5-pro", (1.25, 10.0))],
)
def test_each_request_is_priced_from_the_reported_usage(emu, monkeypatch, tmp_path, budget, model, rates):
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    settings = resolve({"provider": "gemini", "model": model, "thinking_budget": budget})
    provider = GeminiProvider(settings, "fake-key")
    ledger = SpendLedger(tmp_path / "ledger.json", tmp_path / "stops.json")
    ledger.start(cap=None)
    meter = SpendMeter(sync=CataloguePrices("google").pricing(model, False), ledger=ledger)

    result = categorise_batch(BATCH, provider, max_retries=0, meter=meter)

    templates = load_templates()
    assert result.requests == 1
    assert result.input_tokens == count_tokens(templates.system) + count_tokens(render_user(BATCH))
    assert (result.thinking_tokens > 0) is (budget > 0) and result.thinking_tokens <= budget
    billed_out = result.output_tokens + result.thinking_tokens
    expected = (result.input_tokens * rates[0] + billed_out * rates[1]) / 1e6
    assert result.cost_usd == pytest.approx(expected)
    record = ledger.read()
    assert float(record.spent_usd) == pytest.approx(expected) and record.requests_sent == 1
    assert record.usage.thinking_tokens == result.thinking_tokens
