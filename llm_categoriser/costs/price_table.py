"""Prices for models that the ``genai-prices`` data does not list, with their date and source.

Consulted only when the bundled ``genai-prices`` data has no entry for a model. Each entry
names the page its numbers come from and the day they were read there; an entry goes out of
date like any price list, so keep the date true when you change a number. A model in neither
place has no known price: estimates and summaries say so instead of guessing.

Keys are ``(price-list provider id, model)``, the provider id being the one a provider names
in its price list (``google``, ``openai``, ``mistral``, ...).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict


class TableEntry(BaseModel):
    """US dollars per million tokens. A missing batch rate means the provider lists none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: Decimal
    cached_input: Decimal | None = None
    output: Decimal
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None
    read_on: date
    source: str


# Every model the providers of this package default to is in the genai-prices data
# (tests/test_costs_prices.py checks it), so the table is empty today.
PRICE_TABLE: dict[tuple[str, str], TableEntry] = {}
