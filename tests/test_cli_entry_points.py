"""The earlier tool's entry points, and "pending" as its own exit status."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import REPO, copy_sample
from support.emulators.gemini import GeminiEmulator
from support.workflow import read_rows, snakemake

from llm_categoriser.cli import main

pytestmark = pytest.mark.slow
ENV_SETTINGS = ("LLM_PRIMARY", "LLM_CATEGORISER_BATCH_SIZE", "GEMINI_API_KEY", "GOOGLE_API_KEY")
EXIT_PENDING = 75


def cli(work: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([argv[0], "--directory", str(work), *argv[1:]])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    copy_sample(tmp_path)
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    with pytest.MonkeyPatch.context() as patch:
        for name in (*ENV_SETTINGS, "GOOGLE_GEMINI_BASE_URL"):
            patch.delenv(name, raising=False)
        yield tmp_path


def test_run_is_a_synchronous_run_of_the_selection(work: Path) -> None:
    code, out, err = cli(work, "run", "--subjects", "Geography")
    assert code == 0, out + err
    made = sorted(p.parent.parent.name for p in (work / "Documents").glob("*/document_reports/*.csv"))
    assert made and set(made) == {"Geography"}
    assert "Categorised" in out
    assert not (work / "data" / "jobs").exists()  # synchronous: no batch job
    rows = read_rows(work / "Documents" / "combined-report.csv")
    assert {r["subject"] for r in rows} == {"Geography"}


def test_run_with_a_typo_lists_the_closest_subject(work: Path) -> None:
    code, out, err = cli(work, "run", "--subjects", "Geogrphy")
    assert code == 2
    assert "'Geogrphy' matches no subject" in err and "Geography" in err
    assert "Traceback" not in out + err


def test_create_force_submits_again_and_supersedes_the_earlier_jobs(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    selection = ("--provider", "gemini", "--subjects", "Music")
    with GeminiEmulator() as emu:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
        monkeypatch.setenv("GEMINI_API_KEY", "fake-force")
        code, out, err = cli(work, "batch-create", *selection)
        assert code == 0 and "1 job(s) created" in out, out + err
        code, out, err = cli(work, "batch-create", *selection)
        assert code == 0 and "0 job(s) created" in out, out + err
        code, out, err = cli(work, "batch-create", *selection, "--force")
        assert code == 0 and "1 job(s) created" in out, out + err
        first, second = emu.job_names()
        assert emu.job_state(first) == "CANCELLED" and emu.job_state(second) == "PENDING"
        code, out, err = cli(work, "batch-list", "--json")
    jobs = {j["name"]: j for j in json.loads(out)}
    assert set(jobs) == {first, second}
    assert jobs[first]["status"] == "superseded" and jobs[second]["status"] == "pending"
    assert "batch-create --force" in jobs[first]["note"]


@pytest.mark.parametrize("option", ["--tracking-file", "--state-file"])
def test_the_earlier_state_files_are_refused_with_what_replaced_them(work: Path, option: str) -> None:
    code, out, err = cli(work, "batch-fetch", option, "batches.json")
    assert code == 2 and not out
    assert f"{option} is no longer used" in err
    assert "batch-list" in err and "ledger" in err
    assert "Traceback" not in err


def test_pending_jobs_end_the_run_with_their_own_status(work: Path) -> None:
    with GeminiEmulator() as emu:
        env = {"GOOGLE_GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": "fake-pending"}
        selection = 'subjects=["Music"]'
        proc = snakemake(
            work, "--config", "provider=gemini", "mode=batch", selection, "--keep-going", env=env, check=False
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == EXIT_PENDING, out[-3000:]
        block = out[out.index("Pending batch jobs") :]
        name = emu.job_names()[0]
        assert name in block and "Music/" in block and "PENDING" in block and "min" in block
        assert "rerun the same command later" in block
        emu.complete_all()
        proc = snakemake(
            work, "--config", "provider=gemini", "mode=batch", selection, "--keep-going", env=env, check=False
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
