"""The money side of a run, from its settings: the estimate of the plan, the cap, each job's meter
(docs/DESIGN.md §31).

* ``estimate_plan``: before any request, what the plan will send (minus what the answer cache
  already holds), in tokens and US dollars, for the configured provider, model and mode
  (``costs/estimate.py``). Printed with the plan, also on ``snakemake -n``.
* ``begin_run``: when the run starts its jobs (Snakemake's ``onstart``, never on a dry run): a
  run whose estimate is above ``max_cost_usd`` is refused before anything is sent; otherwise
  the run's spend ledger starts from zero.
* ``meter``: what a job uses around each request to keep the cap and record the spend.
* ``finish_run``: when the run ends, the outputs it left short at the cap are deleted, so the
  next run redoes them (their answered batches come from the cache); ``reopen_stopped`` does
  the same at start-up after a run that was killed before its end.

The provider names its price list and its calibration (``ProviderSpec.prices``,
``ProviderSpec.calibration``); nothing here depends on which provider it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal

from .costs.estimate import Estimate, PlannedRequest, cap_problem, estimate_requests
from .costs.ledger import SpendLedger
from .costs.meter import SpendMeter
from .costs.prices import Pricing
from .plan import Plan
from .providers import PROVIDERS, get_provider
from .providers.base import Request
from .settings import Settings


def pricing(settings: Settings, batch: bool) -> Pricing:
    return get_provider(settings.provider).prices.pricing(settings.effective_model, batch)


def rates_per_million(settings: Settings) -> tuple[float, float] | None:
    """US dollars per million input and output tokens of the configured model and mode, for the
    live progress view; None when its requests cost nothing or no price is known."""
    rates = pricing(settings, settings.mode == "batch").rates
    if rates is None or not get_provider(settings.provider).runs_remotely:
        return None
    return float(rates.input), float(rates.output)


def cap(settings: Settings) -> Decimal | None:
    return None if settings.max_cost_usd is None else Decimal(str(settings.max_cost_usd))


def ledger(settings: Settings) -> SpendLedger:
    return SpendLedger(settings.layout.spend_ledger, settings.layout.cap_stops)


def meter(settings: Settings) -> SpendMeter:
    return SpendMeter(
        sync=pricing(settings, batch=False),
        batch=pricing(settings, batch=True),
        ledger=ledger(settings),
        cap=cap(settings),
        provider=settings.provider,
        model=settings.effective_model,
        price_of=_price_of,
    )


def _price_of(provider: str, model: str, batch: bool) -> Pricing | None:
    """The pricing of ``model`` of ``provider`` (a provider of the chain), None if not a provider."""
    if provider not in PROVIDERS:
        return None
    return get_provider(provider).prices.pricing(model, batch)


def expected_cost(settings: Settings, requests: list[Request], batch: bool) -> Decimal | None:
    """The estimated cost of sending ``requests`` (a remote job about to be created)."""
    sizes = [PlannedRequest(r.key, len(r.system) + len(r.user), len(r.local_ids)) for r in requests]
    estimate = estimate_requests(
        sizes,
        answered=lambda fingerprint: False,
        calibration=get_provider(settings.provider).calibration,
        pricing=pricing(settings, batch),
        provider=settings.provider,
        mode="batch" if batch else "sync",
        thinking_budget=settings.thinking_budget,
    )
    return estimate.cost_usd


def planned_requests(plan: Plan) -> Iterator[PlannedRequest]:
    for document in plan.documents:
        for size in document.requests:
            yield PlannedRequest(size.fingerprint, size.prompt_chars, size.flags)


def cached_answers(settings: Settings) -> set[str]:
    """The paths of every answer in the cache: one listing per folder of the cache (a few
    hundred) rather than a ``stat`` per planned batch (17,000 at ×16 of the reference corpus)."""
    root = settings.layout.cache_dir
    try:
        folders = [entry.path for entry in os.scandir(root) if entry.is_dir()]
    except FileNotFoundError:
        return set()
    return {os.path.join(folder, name) for folder in folders for name in os.listdir(folder)}


def estimate_plan(plan: Plan, settings: Settings) -> Estimate:
    """The estimate of ``plan``; a batch whose answer is in the cache is counted apart."""
    present = cached_answers(settings) if settings.reuse_answers else set()
    layout = settings.layout

    def answered(fingerprint: str) -> bool:
        return layout.cached_answer(fingerprint) in present

    batch = settings.mode == "batch"
    return estimate_requests(
        planned_requests(plan),
        answered=answered,
        calibration=get_provider(settings.provider).calibration,
        pricing=pricing(settings, batch),
        provider=settings.provider,
        mode=settings.mode,
        thinking_budget=settings.thinking_budget,
    )


def begin_run(settings: Settings, estimate: Estimate) -> str | None:
    """Start the run's ledger, or return why the run must not start (over the cap)."""
    problem = cap_problem(estimate, cap(settings))
    if problem is None:
        ledger(settings).start(cap(settings), estimate.describe())
    return problem


def finish_run(settings: Settings) -> list[str]:
    """Snakemake's ``onsuccess``/``onerror``: delete the outputs this run left short at the cap."""
    return ledger(settings).remove_stopped()


def reopen_stopped(settings: Settings) -> list[str]:
    """At start-up: what a run killed before its end left short at the cap, now deleted (so
    it is redone); the record of cap stops, an input of the final rule, is created if missing."""
    spend = ledger(settings)
    spend.ensure_stops_file()
    return spend.remove_stopped()
