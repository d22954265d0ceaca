"""Estimate, cap and accounting through Snakemake, with the real SDK against the Gemini emulator."""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import copy_sample
from support.emulators.gemini import GeminiEmulator, default_answer
from support.workflow import answer_times, prepare, read_rows, resent, snakemake

from llm_categoriser.cli import main as cli_main
from llm_categoriser.costs.estimate import suggested_cap
from llm_categoriser.plan import build_plan
from llm_categoriser.settings import resolve

pytestmark = pytest.mark.slow
FAKE_KEY = "AIzaSy-FAKE-cost-cap-0000"


@pytest.fixture
def emu():
    with GeminiEmulator(batch_mode="manual") as emulator:
        yield emulator


def default_plan_batches() -> int:
    """Batches of the bundled sample with the default settings (one request each)."""
    with tempfile.TemporaryDirectory() as folder:
        documents = copy_sample(Path(folder))
        settings = resolve({"documents_dir": str(documents), "data_dir": f"{folder}/data"}, env={})
        return build_plan(settings).batches


SAMPLE_BATCHES = default_plan_batches()


def run(work: Path, emu: GeminiEmulator, *config: str, check: bool = True) -> tuple[int, str]:
    env = {"GOOGLE_GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": FAKE_KEY}
    proc = snakemake(work, "--config", "provider=gemini", *config, env=env, check=check)
    return proc.returncode, proc.stdout + proc.stderr


def estimate(work: Path, capsys, *config: str) -> dict:
    prepare(work)
    capsys.readouterr()
    options = ["--config", *config] if config else []
    cli_main(["estimate", "--directory", str(work), "--provider", "gemini", "--json", *options])
    return json.loads(capsys.readouterr().out)


def summary(work: Path) -> dict:
    return json.loads((work / "Documents" / "run-summary.json").read_text(encoding="utf-8"))


def statuses(work: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in (work / "Documents").glob("*/document_reports/*.csv"):
        for row in read_rows(path):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def verbose_answer(prompt: str) -> str:
    """A model far wordier than the estimate assumes: each reason is a long paragraph."""
    items = json.loads(default_answer(prompt))
    for item in items:
        item["reasoning"] = " ".join([item["reasoning"]] * 5)
    return json.dumps(items)


@pytest.mark.parametrize("mode", ["sync", "batch"])
def test_a_cap_far_below_the_estimate_sends_nothing(work, emu, capsys, mode):
    planned = estimate(work, capsys, f"mode={mode}")
    code, out = run(work, emu, f"mode={mode}", "max_cost_usd=0.0001", check=False)
    assert code != 0
    assert "is above max_cost_usd=$0.0001: nothing was sent" in out
    assert f"Estimate: {SAMPLE_BATCHES} request(s) to send" in out  # the estimate it refused
    raise_to = suggested_cap(Decimal(str(planned["cost_usd"])))  # a round cap above the estimate
    assert f"To run it, raise the cap, e.g. --config max_cost_usd={raise_to}" in out
    assert emu.generate_content_calls == 0 and emu.batch_creations == 0
    assert not list((work / "Documents").glob("*/document_reports/*.csv"))


def test_a_cap_reached_mid_run_stops_new_requests_and_a_higher_cap_continues(work, emu, capsys):
    planned = estimate(work, capsys, "max_cost_usd=1")
    assert planned["requests_to_send"] == SAMPLE_BATCHES
    cap = round(float(planned["cost_usd"]) * 1.2, 4)  # above the estimate: the run starts
    emu.answer_fn = verbose_answer  # ... but the answers cost far more than estimated

    code, out = run(work, emu, f"max_cost_usd={cap}")
    assert code == 0, out
    first = summary(work)["this_run"]
    sent = emu.generate_content_calls
    assert 0 < sent < SAMPLE_BATCHES
    assert first["requests_sent"] == sent
    assert first["cost_usd"] >= cap  # stopped because the reported spend reached the cap
    counts = statuses(work)
    assert counts["over_budget"] > 0 and counts["ok"] > 0
    assert "flag(s) were not sent: the run reached max_cost_usd" in out
    rows = [r for p in (work / "Documents").glob("*/document_reports/*.csv") for r in read_rows(p)]
    stopped = next(r for r in rows if r["status"] == "over_budget")
    assert "rerun with a higher cap (--config max_cost_usd=...)" in stopped["error"]

    cached = answer_times(work)
    code, out = run(work, emu, "max_cost_usd=5")
    assert code == 0, out
    assert statuses(work) == {"ok": 197}
    assert emu.generate_content_calls == SAMPLE_BATCHES  # every batch sent exactly once overall
    assert not resent(cached, {p: t for p, t in answer_times(work).items() if p in cached})
    second = summary(work)["this_run"]
    assert second["requests_sent"] == SAMPLE_BATCHES - sent  # only what the cap left


def test_a_fully_cached_rerun_sends_nothing_and_costs_nothing(work, emu):
    _, out = run(work, emu)
    first = summary(work)
    assert first["this_run"]["requests_sent"] == SAMPLE_BATCHES
    assert first["this_run"]["cost_usd"] > 0
    assert first["spend"]["cost_usd"] == pytest.approx(first["this_run"]["cost_usd"])
    assert f"This run: {SAMPLE_BATCHES} request(s) sent" in out

    _, out = run(work, emu, "--forcerun", "categorise")
    again = summary(work)
    assert emu.generate_content_calls == SAMPLE_BATCHES
    for spend in (again["spend"], again["this_run"]):
        assert spend["requests_sent"] == 0 and spend["requests_reused"] == SAMPLE_BATCHES
        assert spend["cost_usd"] == 0 and spend["usage"]["input_tokens"] == 0
    assert f"This run: 0 request(s) sent, {SAMPLE_BATCHES} answered from the cache" in out
    assert "$0.0000" in out


def test_accounting_from_reported_usage_in_both_modes(tmp_path, emu, capsys):
    sync_dir, batch_dir = tmp_path / "sync", tmp_path / "batch"
    copy_sample(sync_dir)
    copy_sample(batch_dir)
    planned = estimate(sync_dir, capsys)
    run(sync_dir, emu)
    sync = summary(sync_dir)["this_run"]
    usage = sync["usage"]
    # priced from the usage the emulator reported: Gemini 2.5 Flash list prices
    assert sync["cost_usd"] == pytest.approx(
        (usage["input_tokens"] * 0.30 + usage["output_tokens"] * 2.5) / 1e6
    )
    # the offline estimate of the prompt lands near what the provider counted (docs/BENCHMARKS.md)
    assert usage["input_tokens"] == pytest.approx(planned["usage"]["input_tokens"], rel=0.25)

    assert run(batch_dir, emu, "mode=batch", "--keep-going", check=False)[0] != 0  # jobs pending
    handles = [json.loads(p.read_text()) for p in (batch_dir / "data" / "jobs").glob("*/handle.json")]
    assert all(h["expected_cost_usd"] > 0 for h in handles)
    emu.complete_all()
    run(batch_dir, emu, "mode=batch", "--keep-going")
    batch = summary(batch_dir)["this_run"]
    assert batch["requests_sent"] == SAMPLE_BATCHES
    assert batch["usage"] == usage  # the same prompts, the same reported tokens ...
    assert batch["cost_usd"] == pytest.approx(sync["cost_usd"] / 2)  # ... at the Batch API's half price
    results = [json.loads(p.read_text()) for p in (batch_dir / "data" / "jobs").glob("*/results.json")]
    assert sum(r["spend"]["cost_usd"] for r in results) == pytest.approx(batch["cost_usd"])
    ledger = json.loads((batch_dir / "data" / "spend" / "ledger.json").read_text())
    assert float(ledger["committed_usd"]) == 0  # every reservation released by its fetch
