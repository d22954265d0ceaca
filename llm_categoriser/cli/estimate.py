"""The ``estimate`` verb: what a run would send and cost, before anything is sent.

It plans the run in this process, exactly as the workflow does when it starts (the same
settings, filters and planning files), and prints the estimate of ``spending.estimate_plan``.
Nothing is sent to any provider.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import spending
from ..cascade.savings import cascade_savings
from ..costs.estimate import cap_problem
from ..costs.prices import format_usd
from ..plan import build_plan
from .verbs import EXIT_FAILED, EXIT_OK, filters
from .workspace import open_workspace


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Settings name paths relative to the workflow's folder, as Snakemake runs in it."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def cmd_estimate(args: argparse.Namespace) -> int:
    ws = open_workspace(args, filters(args), mode=None)
    settings = ws.settings
    with working_directory(ws.directory):
        plan = build_plan(settings)
        estimate = spending.estimate_plan(plan, settings)
        other_mode = "sync" if settings.mode == "batch" else "batch"
        other = spending.estimate_plan(plan, settings.model_copy(update={"mode": other_mode}))
        savings = cascade_savings(settings, plan, estimate)
    problem = cap_problem(estimate, spending.cap(settings), outcome="a run would send nothing")
    if args.json:
        data = estimate.model_dump(mode="json")
        data["max_cost_usd"] = settings.max_cost_usd
        data["over_cap"] = problem is not None
        data[f"cost_usd_{other_mode}"] = None if other.cost_usd is None else float(other.cost_usd)
        data["cascade"] = None if savings is None else savings.model_dump(mode="json")
        print(json.dumps(data, indent=2))
    else:
        usage = estimate.usage
        print(
            f"Plan: {len(plan.documents)} document(s), {plan.batches} batch(es), {plan.flags} flag(s); "
            f"provider {settings.provider}, model {estimate.model}, {settings.mode} mode"
        )
        print(
            f"Requests: {estimate.requests_to_send} to send, "
            f"{estimate.requests_cached} answered from the cache"
        )
        tokens = f"~{usage.input_tokens:,} input, ~{usage.output_tokens:,} output"
        if usage.thinking_tokens:
            tokens += f", ~{usage.thinking_tokens:,} thinking (the budget, at most)"
        print(f"Tokens: {tokens}")
        source = f" (prices: {estimate.price_source})" if estimate.price_source else ""
        print(f"Cost: {format_usd(estimate.cost_usd)}{source}")
        if other.cost_usd is not None and other.cost_usd != estimate.cost_usd:
            print(f"  in {other_mode} mode: {format_usd(other.cost_usd)} (--config mode={other_mode})")
        if savings is not None:
            print(savings.describe())
        for note in estimate.notes:
            print(f"Note: {note}")
        if settings.max_cost_usd is not None:
            print(f"Cap: max_cost_usd={format_usd(settings.max_cost_usd)}")
    if problem is not None:
        print(problem)
        return EXIT_FAILED  # as a run would: refused
    return EXIT_OK
