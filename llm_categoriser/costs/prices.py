"""A provider's price list and the cost of one request (input, cached, output, thinking).

Prices come from the ``genai-prices`` package's bundled data, read offline: nothing is
fetched at run time (its ``UpdatePrices`` is never started). Where that data lacks a model,
the dated table of ``price_table.py`` is consulted; a model in neither has no known price,
and every estimate or summary says "no price known" rather than print a wrong number.

Batch mode uses the price list's batch rates (``price_context={"processing": "batch"}`` in
``genai-prices``); where a model has none, the standard rate is used and the note says so.
Thinking tokens are billed at the output rate, cached prompt tokens at the cached rate.

Rates are resolved once per model and mode, and a request is priced with them directly,
which is exact as long as its prompt stays below the first tier of a tiered price (Gemini
Pro's rates change above 200,000 prompt tokens): a larger request is priced by
``genai-prices`` itself, per request, as the provider bills it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from .price_table import PRICE_TABLE, TableEntry
from .usage import TokenUsage

MILLION = Decimal(1_000_000)
BATCH_CONTEXT = {"processing": "batch"}


@dataclass(frozen=True)
class Rates:
    """US dollars per million tokens for one model in one mode."""

    input: Decimal
    cached_input: Decimal
    output: Decimal
    linear_below: int | None = None  # prompt tokens from which a tiered rate applies

    def cost(self, usage: TokenUsage) -> Decimal:
        uncached = max(usage.input_tokens - usage.cached_tokens, 0)
        return (
            uncached * self.input
            + min(usage.cached_tokens, usage.input_tokens) * self.cached_input
            + usage.billed_output_tokens * self.output
        ) / MILLION


@dataclass(frozen=True)
class Pricing:
    """How one model is priced in one mode, or why it cannot be."""

    model: str
    batch: bool
    rates: Rates | None
    source: str = ""  # where the rates come from, e.g. "genai-prices 0.2.3 (gemini-2.5-flash)"
    note: str = ""  # what a reader must know: no price known, no batch rate listed
    exact: Callable[[TokenUsage], Decimal] | None = None

    @property
    def known(self) -> bool:
        return self.rates is not None

    def cost(self, usage: TokenUsage) -> Decimal | None:
        """The cost of one request, or None when no price is known."""
        if self.rates is None:
            return None
        tier = self.rates.linear_below
        if tier is not None and usage.input_tokens >= tier and self.exact is not None:
            return self.exact(usage)
        return self.rates.cost(usage)


class PriceList(Protocol):
    """What a provider names: how each of its models is priced."""

    def pricing(self, model: str, batch: bool) -> Pricing: ...


@dataclass(frozen=True)
class NoCharge:
    """A provider that runs locally: every request costs nothing."""

    reason: str = "runs locally"

    def pricing(self, model: str, batch: bool) -> Pricing:
        zero = Decimal(0)
        return Pricing(model, batch, Rates(zero, zero, zero), source=self.reason)


@dataclass(frozen=True)
class NoPriceList:
    """A provider that names no prices: none of its models has a known price."""

    def pricing(self, model: str, batch: bool) -> Pricing:
        return Pricing(model, batch, None, note=f"no price known for model {model}: cost not estimated")


@dataclass(frozen=True)
class CataloguePrices:
    """The models of one provider in the ``genai-prices`` data (``provider_id``), then the table."""

    provider_id: str
    table: tuple[tuple[tuple[str, str], TableEntry], ...] | None = None  # None: price_table.PRICE_TABLE

    def pricing(self, model: str, batch: bool) -> Pricing:
        return _catalogue_pricing(self.provider_id, model, batch, self.table)


@functools.cache
def _catalogue_pricing(
    provider_id: str,
    model: str,
    batch: bool,
    table: tuple[tuple[tuple[str, str], TableEntry], ...] | None,
) -> Pricing:
    found = _library_pricing(provider_id, model, batch)
    if found is not None:
        return found
    entries = dict(table) if table is not None else PRICE_TABLE
    entry = entries.get((provider_id, model))
    if entry is not None:
        return _table_pricing(model, batch, entry)
    return Pricing(
        model,
        batch,
        None,
        note=f"no price known for model {model} ({provider_id}): cost not estimated",
    )


def _table_pricing(model: str, batch: bool, entry: TableEntry) -> Pricing:
    source = f"price table of {entry.read_on.isoformat()} ({entry.source})"
    cached = entry.cached_input if entry.cached_input is not None else entry.input
    if batch and entry.batch_input is not None and entry.batch_output is not None:
        return Pricing(model, batch, Rates(entry.batch_input, cached, entry.batch_output), source)
    note = f"no batch price listed for {model}; standard price used" if batch else ""
    return Pricing(model, batch, Rates(entry.input, cached, entry.output), source, note)


def _library_pricing(provider_id: str, model: str, batch: bool) -> Pricing | None:
    """Rates from the bundled ``genai-prices`` data, or None if it does not list the model."""
    from genai_prices import Usage, __version__, data_snapshot
    from genai_prices.types import TieredPrices

    snapshot = data_snapshot.get_snapshot()
    try:
        provider, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    now = datetime.now(UTC)
    standard = info.get_prices(now)
    own_model = any(info is m for m in provider.models)  # variants only apply to its own models
    prices = info.get_prices(now, BATCH_CONTEXT) if batch and own_model else standard
    note = ""
    if batch and prices == standard:
        note = f"no batch price listed for {model}; standard price used"

    def unit(**counts: int) -> Decimal:
        return prices.calc_price(Usage(**counts))["total_price"] * MILLION

    tiers = [
        tier.start
        for value in vars(prices).values()
        if isinstance(value, TieredPrices)
        for tier in value.tiers
    ]
    rates = Rates(
        input=unit(input_tokens=1),
        cached_input=unit(input_tokens=1, cache_read_tokens=1),
        output=unit(output_tokens=1),
        linear_below=min(tiers) if tiers else None,
    )

    def exact(usage: TokenUsage) -> Decimal:
        return prices.calc_price(
            Usage(
                input_tokens=usage.input_tokens,
                cache_read_tokens=min(usage.cached_tokens, usage.input_tokens),
                output_tokens=usage.billed_output_tokens,
            )
        )["total_price"]

    source = f"genai-prices {__version__} ({provider.id}/{info.id})"
    return Pricing(model, batch, rates, source, note, exact)


def format_usd(amount: Decimal | float | None) -> str:
    """'$0.0412' (four decimals below a dollar, two above), or 'no price known'."""
    if amount is None:
        return "no price known"
    value = float(amount)
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"
