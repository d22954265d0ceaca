"""The batch CLI (``python -m llm_categoriser batch-*``) over the workflow on the bundled sample corpus."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import REPO, copy_sample
from support.emulators.gemini import GeminiEmulator

from llm_categoriser.cli import main
from llm_categoriser.layout import Layout
from llm_categoriser.records import (
    BatchResult,
    DeadAttempt,
    FlagResult,
    RemoteBatch,
    RemoteJobAttempts,
    RemoteJobHandle,
    RemoteJobResults,
    write_record,
)

pytestmark = pytest.mark.slow

ENV_SETTINGS = ("LLM_PRIMARY", "LLM_CATEGORISER_BATCH_SIZE", "GEMINI_API_KEY", "GOOGLE_API_KEY")
SAVED = re.compile(r"^Saved (\d+) result\(s\) to (\S+)", re.MULTILINE)


def cli(work: Path, verb: str, *args: str) -> tuple[int, str, str]:
    """Run a verb in-process (Snakemake itself runs as its subprocess); (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([verb, "--directory", str(work), *args])
    return code, out.getvalue(), err.getvalue()


def make_workdir(path: Path) -> Path:
    copy_sample(path)
    shutil.copy(REPO / "config.yaml", path / "config.yaml")
    return path


def handles(work: Path) -> list[Path]:
    return sorted((work / "data" / "jobs").glob("*/handle.json"))


def listing(work: Path, *args: str) -> list[dict]:
    code, out, _ = cli(work, "batch-list", "--json", *args)
    assert code == 0
    return json.loads(out)


def created_count(output: str) -> int:
    match = re.search(r"(\d+) job\(s\) created, (\d+) already existing", output)
    assert match, output
    return int(match.group(1))


def planned_documents(work: Path) -> list[dict]:
    return json.loads((work / "data" / "plan" / "plan.json").read_text(encoding="utf-8"))["documents"]


def csv_path(work: Path, subject: str, document: str) -> Path:
    return work / "Documents" / subject / "document_reports" / f"{document}.csv"


@pytest.fixture(scope="module")
def clean_env() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        for name in (*ENV_SETTINGS, "GOOGLE_GEMINI_BASE_URL"):
            patch.delenv(name, raising=False)
        yield patch


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory, clean_env: pytest.MonkeyPatch) -> tuple[Path, str]:
    work = make_workdir(tmp_path_factory.mktemp("cli-offline"))
    code, out, err = cli(work, "batch-create", "--provider", "offline")
    assert code == 0, out + err
    return work, out


def test_missing_config_or_report_is_a_clear_error(tmp_path: Path) -> None:
    code, out, err = cli(tmp_path, "batch-list")
    assert code == 2 and "config.yaml" in err and "not found" in err and "Traceback" not in err
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    code, out, err = cli(tmp_path, "batch-fetch")
    assert code == 2 and "language-check-report.csv not found" in err
    code, out, err = cli(tmp_path, "batch-list")
    assert code == 0 and "No batch jobs" in out


def write_job(
    work: Path,
    job: str,
    handle: dict | None = None,
    results: str | None = None,
    died: bool = False,
) -> None:
    """The records of a job: a handle, results of this handle ("current") or of an earlier
    submission ("stale"), and a death in its attempts."""
    layout = Layout("Documents", "data")
    created = "2026-01-02T03:04:05+00:00"
    if died:
        history = [DeadAttempt(attempt=1, name=f"offline/{job}-a1", state="FAILED", error="boom", at=created)]
        write_record(work / layout.attempts(job), RemoteJobAttempts(attempt=2, history=history))
    if handle is not None:
        ref = RemoteBatch(
            subject="S", document="d", batch_id="b", index=0, fingerprint="f", flag_keys=["k1", "k2"]
        )
        fields = {"provider": "offline", "model": "m", "name": f"offline/{job}-a2", **handle}
        write_record(
            work / layout.handle(job), RemoteJobHandle(job=job, batches=[ref], created_at=created, **fields)
        )
    if results is not None:
        items = {k: FlagResult(status="ok") for k in ("k1", "k2")}
        batch = BatchResult(batch_id="b", fingerprint="f", provider="offline", model="m", items=items)
        record = RemoteJobResults(
            job=job,
            name=f"offline/{job}-a2",
            state="SUCCEEDED",
            handle_created_at=created if results == "current" else "2025-12-31T00:00:00+00:00",
            fetched_at=created,
            batches=[batch],
        )
        write_record(work / layout.job_results(job), record)


def test_status_from_the_job_files(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    write_job(tmp_path, "pending", handle={})
    write_job(tmp_path, "completed", handle={}, results="current")
    write_job(tmp_path, "stale-results", handle={}, results="stale")
    write_job(tmp_path, "dead", died=True)
    write_job(tmp_path, "dead-resubmitted", handle={}, died=True)
    write_job(tmp_path, "abandoned", handle={"state": "ABANDONED", "error": "gave up"}, results="current")
    status = {j["job"]: j["status"] for j in listing(tmp_path)}
    assert status == {
        "pending": "pending",
        "completed": "completed",
        "stale-results": "pending",
        "dead": "failed",
        "dead-resubmitted": "pending",
        "abandoned": "failed",
    }
    assert [j["job"] for j in listing(tmp_path, "--status", "failed")] == ["abandoned", "dead"]
    verbose = {j["job"]: j for j in listing(tmp_path, "--verbose")}
    assert verbose["pending"]["issues"] == 2 and verbose["pending"]["issue_keys"] == ["k1", "k2"]
    code, out, _ = cli(tmp_path, "batch-cancel", "--job-names", "offline/pending-a2", "completed")
    assert code == 0
    assert out.splitlines()[0].startswith("pending (offline/pending-a2): cancelled")
    assert out.splitlines()[1].startswith("completed (offline/completed-a2): already fetched")
    code, _, err = cli(tmp_path, "batch-cancel", "--job-names", "nope")
    assert code == 2 and "unknown job name(s): nope" in err
    (tmp_path / Layout("Documents", "data").handle("pending")).write_text('{"job": "pending"}')
    code, _, err = cli(tmp_path, "batch-list")
    assert code == 2 and "handle.json is not a RemoteJobHandle of this version" in err
    assert "delete the job's folder" in err and "Traceback" not in err


def test_create_prints_documents_and_jobs_created(created: tuple[Path, str]) -> None:
    work, out = created
    documents = planned_documents(work)
    for doc in documents:
        line = f"{doc['subject']}/{doc['document']}: {len(doc['batch_ids'])} batch(es) in job "
        assert line in out
    assert created_count(out) == len(handles(work)) > 0
    assert f"Summary: {len(documents)} document(s)" in out


def test_second_create_creates_nothing(created: tuple[Path, str]) -> None:
    work, _ = created
    before = {p: p.stat().st_mtime_ns for p in handles(work)}
    code, out, err = cli(work, "batch-create", "--provider", "offline")
    assert code == 0, out + err
    assert created_count(out) == 0
    assert f"{len(before)} already existing" in out
    assert {p: p.stat().st_mtime_ns for p in handles(work)} == before


def test_list_cancel_then_fetch_one_job_then_all(created: tuple[Path, str]) -> None:
    work, _ = created
    jobs = listing(work)
    assert jobs and {j["status"] for j in jobs} == {"pending"}
    assert {j["provider"] for j in jobs} == {"offline"}
    code, out, _ = cli(work, "batch-list", "--verbose")
    assert code == 0 and "ISSUE IDS" in out and f"{len(jobs)} job(s): {len(jobs)} pending" in out
    code, out, _ = cli(work, "batch-list", "--status", "completed")
    assert code == 0 and "No completed batch jobs" in out

    code, out, _ = cli(work, "batch-cancel", "--all", "--provider", "offline")
    assert code == 0
    assert len(out.strip().splitlines()) == len(jobs)
    assert all(f"{j['job']} ({j['name']}): cancelled" in out for j in jobs)

    # one job, named by its remote name: only its results and its documents
    first = jobs[0]
    code, out, err = cli(work, "batch-fetch", "--job-names", first["name"], "--provider", "offline")
    assert code == 0, out + err
    saved = SAVED.findall(out)
    assert len(saved) == 1 and saved[0][1].endswith(f"{first['job']}/results.json")
    assert int(saved[0][0]) == first["issues"]
    assert "Checked 1 job(s): 1 completed, 0 failed, 0 still pending." in out
    assert all(csv_path(work, d["subject"], d["document"]).exists() for d in first["documents"])
    others = [d for j in jobs[1:] for d in j["documents"]]
    assert not any(csv_path(work, d["subject"], d["document"]).exists() for d in others)
    assert [j["job"] for j in listing(work, "--status", "completed")] == [first["job"]]
    assert [j["job"] for j in listing(work, "--status", "pending")] == [j["job"] for j in jobs[1:]]

    # everything else
    code, out, err = cli(work, "batch-fetch", "--check-all-pending", "--provider", "offline")
    assert code == 0, out + err
    saved = SAVED.findall(out)
    assert len(saved) == len(jobs)
    assert sum(int(n) for n, _ in saved) == sum(j["issues"] for j in jobs)
    assert f"Checked {len(jobs)} job(s): {len(jobs)} completed, 0 failed, 0 still pending." in out
    for doc in planned_documents(work):
        assert csv_path(work, doc["subject"], doc["document"]).exists()
    assert (work / "Documents" / "combined-report.csv").exists()
    assert {j["status"] for j in listing(work)} == {"completed"}


def test_gemini_jobs_stay_pending_until_the_emulator_completes_them(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    work = make_workdir(tmp_path)
    selection = ["--provider", "gemini", "--config", 'subjects=["Music","Geography"]']
    with GeminiEmulator() as emu:
        clean_env.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
        clean_env.setenv("GEMINI_API_KEY", "fake")
        try:
            code, out, err = cli(work, "batch-create", *selection[:2], "--subjects", "Music", "Geography")
            assert code == 0, out + err
            assert created_count(out) == len(handles(work)) == 2
            jobs = listing(work)
            assert all(j["provider"] == "gemini" and j["name"].startswith("batches/") for j in jobs)

            code, out, err = cli(work, "batch-fetch", *selection)
            assert code == 75, out + err  # pending
            pending = [line for line in out.splitlines() if line.startswith("Pending: ")]
            assert all(any(line.startswith(f"Pending: {j['name']} ") for line in pending) for j in jobs)
            assert "Checked 2 job(s): 0 completed, 0 failed, 2 still pending." in out
            assert not SAVED.search(out)

            emu.complete_all()
            code, out, err = cli(work, "batch-fetch", *selection)
            assert code == 0, out + err
            assert len(SAVED.findall(out)) == 2
            assert "Checked 2 job(s): 2 completed, 0 failed, 0 still pending." in out
            assert emu.batch_creations == len(handles(work)) == 2
            assert {j["status"] for j in listing(work)} == {"completed"}
        finally:
            clean_env.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
            clean_env.delenv("GEMINI_API_KEY", raising=False)
