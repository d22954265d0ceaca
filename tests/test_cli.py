"""The batch CLI (``python -m llm_categoriser batch-*``) over the workflow on the bundled sample corpus."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import REPO, copy_sample
from gemini_emulator import GeminiEmulator

from llm_categoriser.cli import main

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
    age: int,
    handle: dict | None = None,
    results: int | None = None,
    died: int | None = None,
) -> None:
    """A job folder with files of the given ages in seconds (older files first)."""
    folder = work / "data" / "jobs" / job
    folder.mkdir(parents=True)
    files: list[tuple[str, dict, int]] = []
    if died is not None:
        history = [{"attempt": 1, "name": f"offline/{job}-a1", "state": "FAILED", "error": "boom"}]
        files.append(("attempts.json", {"attempt": 2, "history": history}, died))
    if handle is not None:
        refs = [
            {
                "subject": "S",
                "document": "d",
                "batch_id": "b",
                "index": 0,
                "fingerprint": "f",
                "issue_keys": ["k1", "k2"],
            }
        ]
        files.append(
            (
                "handle.json",
                {"job": job, "provider": "offline", "name": f"offline/{job}-a2", "batches": refs, **handle},
                age,
            )
        )
    if results is not None:
        files.append(("results.json", {"job": job, "batches": [{"items": {"k1": {}, "k2": {}}}]}, results))
    now = time.time()
    for name, data, seconds in files:
        path = folder / name
        path.write_text(json.dumps(data), encoding="utf-8")
        os.utime(path, (now - seconds, now - seconds))


def test_status_from_the_job_files(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    write_job(tmp_path, "pending", 10, handle={})
    write_job(tmp_path, "completed", 10, handle={}, results=5)
    write_job(tmp_path, "stale-results", 5, handle={}, results=10)
    write_job(tmp_path, "dead", 0, died=10)
    write_job(tmp_path, "dead-resubmitted", 5, handle={}, died=10)
    write_job(tmp_path, "abandoned", 5, handle={"state": "ABANDONED", "error": "gave up"}, results=1)
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
            assert code == 1, out + err
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
