"""The offline estimate of a plan's requests, and the check against max_cost_usd."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

import pytest
from conftest import copy_sample
from support.workflow import prepare

from llm_categoriser.cli import main as cli_main
from llm_categoriser.costs.estimate import (
    ANSWER_ARRAY_CHARS,
    ANSWER_CHARS_PER_FLAG,
    PlannedRequest,
    TokenCalibration,
    cap_problem,
    estimate_requests,
    suggested_cap,
)
from llm_categoriser.costs.prices import CataloguePrices

CALIBRATION = TokenCalibration(chars_per_token=4.0)
REQUESTS = [
    PlannedRequest("a" * 32, prompt_chars=8_001, flags=10),
    PlannedRequest("b" * 32, prompt_chars=4_000, flags=3),
    PlannedRequest("c" * 32, prompt_chars=20_000, flags=10),
]


def run(requests=REQUESTS, cached=(), model="gemini-2.5-flash", batch=False, thinking=0):
    return estimate_requests(
        requests,
        answered=lambda fp: fp in cached,
        calibration=CALIBRATION,
        pricing=CataloguePrices("google").pricing(model, batch),
        provider="gemini",
        mode="batch" if batch else "sync",
        thinking_budget=thinking,
    )


def test_tokens_from_prompt_characters_and_flags():
    estimate = run(cached={"c" * 32})
    assert (estimate.batches, estimate.requests_to_send, estimate.requests_cached) == (3, 2, 1)
    assert estimate.usage.input_tokens == math.ceil(8_001 / 4) + 4_000 // 4
    answer = lambda flags: math.ceil((flags * ANSWER_CHARS_PER_FLAG + ANSWER_ARRAY_CHARS) / 4)  # noqa: E731
    assert estimate.usage.output_tokens == answer(10) + answer(3)
    expected = (
        estimate.usage.input_tokens * Decimal("0.30") + estimate.usage.output_tokens * Decimal("2.5")
    ) / (10**6)
    assert estimate.cost_usd == expected


def test_batch_mode_is_half_and_a_cached_plan_costs_nothing():
    sync, batch = run(), run(batch=True)
    assert batch.cost_usd * 2 == sync.cost_usd
    everything = run(cached={r.fingerprint for r in REQUESTS})
    assert (everything.requests_to_send, everything.cost_usd, everything.usage.total_tokens) == (0, 0, 0)


def test_thinking_budget_is_an_upper_bound_per_request():
    assert run(thinking=512).usage.thinking_tokens == 3 * 512
    dynamic = run(thinking=-1)
    assert dynamic.usage.thinking_tokens == 0
    assert any("thinking tokens not estimated" in note for note in dynamic.notes)


def test_describe_says_requests_tokens_and_cost():
    line = run(cached={"c" * 32}).describe()
    assert line.startswith("Estimate: 2 request(s) to send, 1 answered from the cache; ~")
    assert "gemini gemini-2.5-flash (sync mode)" in line and "$0.00" in line
    unknown = run(model="gemini-9-imaginary")
    assert unknown.cost_usd is None
    assert "no price known" in unknown.describe()


def test_cap_problem():
    estimate = run()
    assert cap_problem(estimate, None) is None
    assert cap_problem(estimate, estimate.cost_usd) is None
    message = cap_problem(estimate, Decimal("0.0001"))
    assert message is not None
    assert f"${float(estimate.cost_usd):.4f}" in message and "max_cost_usd=$0.0001" in message
    assert "nothing was sent" in message and "--config max_cost_usd=" in message
    assert "no price known" in cap_problem(run(model="gemini-9-imaginary"), Decimal(1))
    assert cap_problem(run(cached={r.fingerprint for r in REQUESTS}), Decimal(0)) is None


def test_suggested_cap_is_round_and_above():
    for cost, expected in [("0.0402", "0.06"), ("0.15", "0.2"), ("7.9", "10"), ("123.4", "200")]:
        assert suggested_cap(Decimal(cost)) == expected
        assert Decimal(expected) > Decimal(cost)


def test_the_estimate_verb_plans_without_sending(tmp_path, capsys):
    copy_sample(tmp_path)
    prepare(tmp_path)
    where = ["--directory", str(tmp_path), "--provider", "gemini"]
    assert cli_main(["estimate", *where]) == 0
    out = capsys.readouterr().out
    planned = re.search(r"Plan: 8 document\(s\), (\d+) batch\(es\), 197 flag\(s\); provider gemini", out)
    assert planned and f"Requests: {planned[1]} to send, 0 answered from the cache" in out
    assert "prices: genai-prices" in out and "in batch mode: $" in out

    assert cli_main(["estimate", *where, "--json", "--config", "mode=batch"]) == 0
    batch = json.loads(capsys.readouterr().out)
    assert batch["mode"] == "batch" and float(batch["cost_usd"]) * 2 == pytest.approx(batch["cost_usd_sync"])

    assert cli_main(["estimate", *where, "--subjects", "Geography", "--config", "max_cost_usd=0.0001"]) == 2
    out = capsys.readouterr().out
    assert "is above max_cost_usd=$0.0001: a run would send nothing" in out
    assert "Plan: 2 document(s)" in out  # the filters of the other verbs
