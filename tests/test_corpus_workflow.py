"""The offline pipeline on a copy of the reference corpus (skipped when ../shared/corpus is absent)."""

from __future__ import annotations

import csv
import io
import shutil
from collections import Counter

import pytest
from support.workflow import answer_times, job_counts, merges_reading_the_job_of, read_rows, resent, snakemake

from llm_categoriser.outputs import read_csv

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, request):
    shared = request.getfixturevalue("shared_corpus")
    work = tmp_path_factory.mktemp("corpus")
    shutil.copytree(shared / "Documents", work / "Documents")
    for path in (work / "Documents").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    snakemake(work, timeout=1800)
    return work


def test_every_issue_present(corpus_run):
    report = read_rows(corpus_run / "Documents" / "language-check-report.csv")
    combined = read_csv(corpus_run / "Documents" / "combined-report.csv")  # undoes formula escaping
    assert len(report) == len(combined) == 5603
    key = ("Subject", "Filename", "Issue", "Highlighted Context")
    expected = Counter(tuple(r[k] for k in key) for r in report)
    got = Counter((r["subject"], r["filename"], r["issue"], r["highlighted_context"]) for r in combined)
    assert got == expected
    assert {r["status"] for r in combined} <= {"ok", "repaired"}


def test_second_run_does_nothing(corpus_run):
    assert "Nothing to be done" in snakemake(corpus_run, "--dry-run").stdout


def test_one_edit_reruns_one_batch_then_forcerun_merge_does_not_recategorise(corpus_run):
    path = corpus_run / "Documents" / "language-check-report.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    biggest = Counter((r[0], r[1]) for r in rows[1:]).most_common(1)[0][0]
    indexes = [i for i, r in enumerate(rows) if (r[0], r[1]) == biggest]
    rows[indexes[len(indexes) // 2]][5] += " (edited)"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    assert job_counts(snakemake(corpus_run, "--dry-run").stdout) == {
        "categorise": 1,  # the job holding the batch
        "merge": merges_reading_the_job_of(corpus_run, " (edited)"),
        "combine": 1,
        "results_view": 1,
        "all": 1,
    }
    before = answer_times(corpus_run)
    snakemake(corpus_run)
    assert len(resent(before, answer_times(corpus_run))) == 1
    forced = snakemake(corpus_run, "--forcerun", "merge", "--dry-run").stdout
    counts = job_counts(forced)
    merges = len(list((corpus_run / "data" / "merge").glob("*.json")))
    assert counts.get("categorise", 0) == 0 and counts["merge"] == merges < 40  # one per job of the plan


def test_batch_mode_on_the_corpus_against_the_emulator(tmp_path, shared_corpus):
    from support.emulators.gemini import GeminiEmulator

    work = tmp_path / "batch"
    shutil.copytree(shared_corpus / "Documents", work / "Documents")
    for path in (work / "Documents").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    with GeminiEmulator(batch_mode="manual") as emu:
        env = {"GOOGLE_GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": "corpus-test-key"}
        args = ("--keep-going", "--config", "provider=gemini", "mode=batch")
        first = snakemake(work, *args, env=env, check=False, timeout=1800)
        assert first.returncode != 0
        assert "PENDING for" in first.stdout + first.stderr
        jobs = emu.batch_creations
        assert 0 < jobs <= 100
        emu.complete_all()
        snakemake(work, *args, env=env, timeout=1800)
        print(
            f"\ncorpus batch mode: {jobs} job(s), largest inline payload {emu.max_inline_batch_bytes} bytes"
        )
        assert emu.batch_creations == jobs
    combined = read_rows(work / "Documents" / "combined-report.csv")
    assert len(combined) == 5603
    assert {r["status"] for r in combined} == {"ok"}
    assert {r["provider"] for r in combined} == {"gemini"}
