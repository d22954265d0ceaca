"""Price lists: genai-prices' bundled data read offline, the dated table, the batch discount."""

from __future__ import annotations

import socket
from datetime import date
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price, data_snapshot

from llm_categoriser.costs.price_table import TableEntry
from llm_categoriser.costs.prices import CataloguePrices, NoCharge, format_usd
from llm_categoriser.costs.usage import TokenUsage

USAGES = [
    TokenUsage(input_tokens=3_210, output_tokens=455),
    TokenUsage(input_tokens=12_000, cached_tokens=4_000, output_tokens=900, thinking_tokens=300),
    TokenUsage(input_tokens=250_000, output_tokens=2_000),  # above Gemini Pro's 200k tier
]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a price lookup tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    ("provider_id", "model"),
    [
        ("google", "gemini-2.5-flash"),
        ("google", "gemini-2.5-pro"),
        ("google", "gemini-2.5-flash-lite"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1-mini"),
        ("mistral", "mistral-small-latest"),
        ("mistral", "mistral-large-latest"),
    ],
)
@pytest.mark.parametrize("batch", [False, True])
def test_request_cost_equals_genai_prices_per_request(no_network, provider_id, model, batch):
    pricing = CataloguePrices(provider_id).pricing(model, batch)
    assert pricing.known, pricing.note
    context = {"processing": "batch"} if batch else None
    for usage in USAGES:
        expected = calc_price(
            Usage(
                input_tokens=usage.input_tokens,
                cache_read_tokens=usage.cached_tokens,
                output_tokens=usage.output_tokens + usage.thinking_tokens,
            ),
            model,
            provider_id=provider_id,
            price_context=context,
        ).total_price
        assert pricing.cost(usage) == pytest.approx(expected, rel=Decimal("1e-12"))


def test_bundled_data_only():
    CataloguePrices("google").pricing("gemini-2.5-flash", False)
    assert data_snapshot.get_snapshot().from_auto_update is False


def test_flash_list_prices_and_batch_half():
    million_each = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    sync = CataloguePrices("google").pricing("gemini-2.5-flash", False)
    batch = CataloguePrices("google").pricing("gemini-2.5-flash", True)
    # Gemini API list prices: $0.30 in, $2.50 out per million tokens; the Batch API halves both
    assert sync.cost(million_each) == Decimal("2.80")
    assert batch.cost(million_each) == Decimal("1.40")
    assert batch.note == ""
    assert "genai-prices" in sync.source and "gemini-2.5-flash" in sync.source


def test_pro_is_priced_as_pro_not_flash():
    usage = TokenUsage(input_tokens=60_000, output_tokens=10_000)
    flash = CataloguePrices("google").pricing("gemini-2.5-flash", False).cost(usage)
    pro = CataloguePrices("google").pricing("gemini-2.5-pro", False).cost(usage)
    assert pro == Decimal("0.175")  # 60k x $1.25 + 10k x $10 per million
    assert pro > 4 * flash


def test_thinking_is_billed_as_output_and_cached_input_at_the_cached_rate():
    pricing = CataloguePrices("google").pricing("gemini-2.5-flash", False)
    plain = pricing.cost(TokenUsage(input_tokens=1_000_000))
    cached = pricing.cost(TokenUsage(input_tokens=1_000_000, cached_tokens=1_000_000))
    thinking = pricing.cost(TokenUsage(thinking_tokens=1_000_000))
    assert (plain, cached, thinking) == (Decimal("0.30"), Decimal("0.03"), Decimal("2.50"))


def test_unknown_model_has_no_price():
    pricing = CataloguePrices("google").pricing("gemini-9-imaginary", False)
    assert not pricing.known
    assert pricing.cost(USAGES[0]) is None
    assert "no price known for model gemini-9-imaginary" in pricing.note
    assert format_usd(None) == "no price known"


def test_missing_batch_rate_uses_the_standard_rate_and_says_so():
    pricing = CataloguePrices("mistral").pricing("mistral-large-latest", True)
    standard = CataloguePrices("mistral").pricing("mistral-large-latest", False)
    assert pricing.cost(USAGES[0]) == standard.cost(USAGES[0])
    assert "no batch price listed" in pricing.note


def test_table_prices_a_model_the_library_lacks():
    entry = TableEntry(
        input=Decimal("1"),
        output=Decimal("4"),
        batch_input=Decimal("0.5"),
        batch_output=Decimal("2"),
        read_on=date(2026, 11, 30),
        source="https://example.org/pricing",
    )
    prices = CataloguePrices("google", table=((("google", "house-model-1"), entry),))
    sync, batch = prices.pricing("house-model-1", False), prices.pricing("house-model-1", True)
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert (sync.cost(usage), batch.cost(usage)) == (Decimal("5"), Decimal("2.5"))
    assert "price table of 2026-11-30" in sync.source and "example.org" in sync.source
    # the library still wins where it lists the model
    assert "genai-prices" in prices.pricing("gemini-2.5-flash", False).source


def test_local_provider_costs_nothing():
    pricing = NoCharge().pricing("offline-rules-v1", True)
    assert pricing.known and pricing.cost(USAGES[1]) == 0


def test_format_usd():
    assert format_usd(Decimal("0.04123")) == "$0.0412"
    assert format_usd(Decimal("12.345")) == "$12.35"
