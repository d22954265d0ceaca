"""The cascade in the workflow: local answers, fewer requests, re-decided after train, the audit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cascade_data import build_corpus, write_cache
from support.workflow import read_rows, snakemake

from llm_categoriser.cascade.learn import model_path, train_from_cache
from llm_categoriser.cascade.model import load_model
from llm_categoriser.categories import CATEGORY_NAMES
from llm_categoriser.records import CascadeSpec, PlannedBatches, RunSummary, read_record
from llm_categoriser.settings import resolve

pytestmark = pytest.mark.slow
PLAN_LINE = re.compile(
    r"Cascade: model (\w{12}) answers (\d+) of (\d+) flag\(s\) locally \((\d+) decided anew"
)


def trained_workspace(tmp_path: Path, seed: int = 0) -> tuple[Path, dict[str, str]]:
    _report, answers = build_corpus(tmp_path)
    (tmp_path / "config.yaml").write_text(
        "documents_dir: Documents\ndata_dir: data\nprovider: offline\n", encoding="utf-8"
    )
    write_cache(tmp_path / "data", answers, "gemini", "e" * 32)
    retrain(tmp_path, seed)
    return tmp_path, answers


def retrain(work: Path, seed: int) -> str:
    settings = resolve(
        {
            "documents_dir": str(work / "Documents"),
            "data_dir": str(work / "data"),
            "cascade_seed": seed,
        }
    )
    model, _cached, _path = train_from_cache(settings)
    return model.fingerprint


def planned_keys(work: Path) -> set[str]:
    files = (work / "data" / "plan").glob("*/*/batches.json")
    return {flag.key for path in files for b in read_record(path, PlannedBatches).batches for flag in b.flags}


def summary(work: Path) -> RunSummary:
    return read_record(work / "Documents" / "run-summary.json", RunSummary)


def test_cascade_answers_locally_and_sends_only_the_rest(tmp_path: Path) -> None:
    work, answers = trained_workspace(tmp_path)
    fingerprint = load_model(work / "data" / "cascade" / "model.npz").fingerprint
    proc = snakemake(work, "--config", "cascade=true")
    found = PLAN_LINE.search(proc.stderr)
    assert found, proc.stderr[-2000:]
    assert found.group(1) == fingerprint[:12]
    local, total, anew = int(found.group(2)), int(found.group(3)), int(found.group(4))
    assert total == len(answers) and 0 < local < total and anew == local

    rows = read_rows(work / "Documents" / "combined-report.csv")
    cascaded = [r for r in rows if r["provider"] == "cascade"]
    assert len(cascaded) == local
    for row in cascaded:
        assert row["model"] == fingerprint and row["status"] == "ok"
        assert 0 <= int(row["confidence_score"]) <= 100
        assert row["error_category"] in CATEGORY_NAMES
    assert {r["provider"] for r in rows} == {"cascade", "offline"}
    # the flags answered locally are in no batch: no request carries them
    assert not planned_keys(work) & {r["issue_key"] for r in cascaded}
    done = summary(work)
    assert done.cascaded == local and done.audited == 0
    assert done.spend.cost_usd == 0.0  # offline and the cascade cost nothing
    assert done.issues == len(answers)
    assert f"Answered locally by the cascade (no request): {local} flag(s)." in proc.stdout

    # the same run again: nothing is redone, nothing decided anew
    again = snakemake(work, "--config", "cascade=true")
    assert "Nothing to be done" in again.stdout + again.stderr

    # a new model re-decides; the plan line says how many
    assert retrain(work, seed=5) != fingerprint
    rerun = snakemake(work, "--config", "cascade=true")
    found = PLAN_LINE.search(rerun.stderr)
    assert found and found.group(1) != fingerprint[:12]
    assert int(found.group(4)) > 0
    models = {
        r["model"]
        for r in read_rows(work / "Documents" / "combined-report.csv")
        if r["provider"] == "cascade"
    }
    assert models == {load_model(model_path(resolve({"data_dir": str(work / "data")}))).fingerprint}

    # cascade off: every flag goes to the provider again
    snakemake(work, "--config", "cascade=false")
    rows = read_rows(work / "Documents" / "combined-report.csv")
    assert {r["provider"] for r in rows} == {"offline"}
    assert summary(work).cascaded == 0


def test_cascade_audit_sends_drawn_flags_to_the_provider_too(tmp_path: Path) -> None:
    work, _answers = trained_workspace(tmp_path)
    proc = snakemake(work, "--config", "cascade=true", "cascade_audit=3")
    assert "3 also sent to the provider for the audit" in proc.stderr
    done = summary(work)
    assert done.audited == 3 and 0 <= done.audit_agreed <= 3
    assert re.search(r"Cascade audit: 3 flag\(s\) also sent to the provider; it agreed on \d", proc.stdout)
    spec_keys = {
        a.key
        for path in (work / "data" / "plan").glob("*/*/cascade.json")
        for a in read_record(path, CascadeSpec).answers
        if a.audit
    }
    assert len(spec_keys) == 3 and spec_keys <= planned_keys(work)
    rows = {r["issue_key"]: r for r in read_rows(work / "Documents" / "combined-report.csv")}
    assert {rows[k]["provider"] for k in spec_keys} == {"offline"}  # the provider's answer is written


def test_cascade_in_batch_mode(tmp_path: Path) -> None:
    work, _answers = trained_workspace(tmp_path)
    snakemake(work, "--config", "cascade=true", "mode=batch", "--keep-going")
    rows = read_rows(work / "Documents" / "combined-report.csv")
    assert {r["provider"] for r in rows} == {"cascade", "offline"}
    assert not planned_keys(work) & {r["issue_key"] for r in rows if r["provider"] == "cascade"}


def test_cascade_without_a_model_warns_and_sends_everything(tmp_path: Path) -> None:
    _report, _answers = build_corpus(tmp_path)
    (tmp_path / "config.yaml").write_text("documents_dir: Documents\ndata_dir: data\n", encoding="utf-8")
    proc = snakemake(tmp_path, "--config", "cascade=true")
    assert "cascade model" in proc.stderr and "not found" in proc.stderr
    assert "python -m llm_categoriser train" in proc.stderr
    rows = read_rows(tmp_path / "Documents" / "combined-report.csv")
    assert {r["provider"] for r in rows} == {"offline"}
