"""Snakemake integration on the bundled sample corpus: run, no-op rerun, one-issue edit, forcerun."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest
from conftest import copy_sample
from support.workflow import answer_times, job_counts, merges_reading_the_job_of, read_rows, resent, snakemake

from llm_categoriser.outputs import DOCUMENT_COLUMNS, LEGACY_COLUMNS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wf")
    copy_sample(work)
    proc = snakemake(work)
    assert "Categorised" in proc.stdout + proc.stderr
    return work


def report_rows(work: Path) -> list[dict[str, str]]:
    return read_rows(work / "Documents" / "language-check-report.csv")


def test_every_issue_in_exactly_one_document_csv(done_run):
    report = report_rows(done_run)
    seen = Counter()
    for csv_path in (done_run / "Documents").glob("*/document_reports/*.csv"):
        rows = read_rows(csv_path)
        with open(csv_path, encoding="utf-8") as handle:
            assert tuple(next(csv.reader(handle))) == DOCUMENT_COLUMNS
        subject = csv_path.parent.parent.name
        assert [int(r["issue_id"]) for r in rows] == list(range(len(rows)))
        for row in rows:
            assert row["status"] in {"ok", "repaired"}, row
            assert row["error_category"] and row["confidence_score"].isdigit()
            assert row["provider"] == "offline"
            seen[(subject, csv_path.stem, row["issue"], row["highlighted_context"])] += 1
    expected = Counter(
        (r["Subject"], r["Filename"].removesuffix(".md"), r["Issue"], r["Highlighted Context"])
        for r in report
    )
    assert seen == expected
    combined = read_rows(done_run / "Documents" / "combined-report.csv")
    assert len(combined) == len(report)
    assert tuple(list(combined[0])[2:10]) == LEGACY_COLUMNS


def test_noop_rerun_does_nothing(done_run):
    proc = snakemake(done_run, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_every_job_runs_in_snakemakes_process(done_run):
    """No job starts an interpreter of its own: combine is a ``run:`` job too (docs/DESIGN.md §11)."""
    assert not (done_run / ".snakemake" / "scripts").exists()
    combine_log = (done_run / "data" / "logs" / "combine.log").read_text(encoding="utf-8")
    assert f"{len(report_rows(done_run))} flag(s) in 8 document(s)" in combine_log


def test_a_run_does_not_import_pandas(done_run):
    """Snakemake imports pandas to record a finished job's params when pandas is installed (it
    is, for the tests): the jobs in its process have no params (docs/DESIGN.md §11)."""
    proc = snakemake(done_run, "--forcerun", "combine", env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "llm_categoriser.outputs" in imported  # the import times are there ...
    assert "pandas" not in imported  # ... and pandas is not among them


def test_one_issue_edit_reruns_one_batch_and_its_merge(done_run):
    path = done_run / "Documents" / "language-check-report.csv"
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    counts = Counter((r[0], r[1]) for r in rows[1:])
    big = counts.most_common(1)[0][0]
    indexes = [i for i, r in enumerate(rows) if (r[0], r[1]) == big]
    target = indexes[len(indexes) // 2]
    rows[target][5] = rows[target][5] + " edited"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")

    dry = snakemake(done_run, "--dry-run")
    # the job holding the edited batch, and the merges of the documents it serves
    merges = merges_reading_the_job_of(done_run, " edited")
    assert job_counts(dry.stdout) == {
        "categorise": 1,
        "merge": merges,
        "combine": 1,
        "results_view": 1,
        "all": 1,
    }
    before = answer_times(done_run)
    csvs = {p: p.stat().st_mtime_ns for p in (done_run / "Documents").glob("*/document_reports/*.csv")}
    snakemake(done_run)
    # the job reran its batches, but only the edited one went to the provider
    changed = resent(before, answer_times(done_run))
    assert len(changed) == 1, changed
    doc = done_run / "Documents" / big[0] / "document_reports" / big[1].replace(".md", ".csv")
    assert any(r["issue"].endswith(" edited") for r in read_rows(doc))
    # the merge job rewrote the edited document's CSV only
    assert [p for p, mtime in csvs.items() if p.stat().st_mtime_ns != mtime] == [doc]
    assert "Nothing to be done" in snakemake(done_run, "--dry-run").stdout


def test_a_deleted_csv_is_written_again_when_the_report_is_rebuilt(done_run):
    doc = next((done_run / "Documents").glob("*/document_reports/*.csv"))
    text = doc.read_bytes()
    doc.unlink()
    # the merge job that writes it runs again, and no other (as after a stop at the cost cap)
    counts = job_counts(snakemake(done_run, "--forcerun", "combine", "--dry-run").stdout)
    assert counts["merge"] == 1 and counts.get("categorise", 0) == 0
    snakemake(done_run, "--forcerun", "combine")
    assert doc.read_bytes() == text
    assert "Nothing to be done" in snakemake(done_run, "--dry-run").stdout


def test_forcerun_merge_rebuilds_csvs_without_recategorising(done_run):
    results = sorted((done_run / "data" / "results").rglob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in results}
    proc = snakemake(done_run, "--forcerun", "merge")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts.get("categorise", 0) == 0
    # one merge job per job of the plan, writing the CSVs of its documents
    assert counts["merge"] == len(list((done_run / "data" / "merge").glob("*.json"))) < 8
    assert {p: p.stat().st_mtime_ns for p in results} == before
