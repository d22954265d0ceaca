"""Every remote job is in the ledger: setting changes, fetches and cancels never lose one.

The Gemini emulator runs with the real SDK; the CLI runs in-process (Snakemake as its
subprocess), as a user would type it.
"""

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
from support.workflow import read_rows

from llm_categoriser.cli import main

pytestmark = pytest.mark.slow
ENV_SETTINGS = ("LLM_PRIMARY", "LLM_CATEGORISER_BATCH_SIZE", "GEMINI_API_KEY", "GOOGLE_API_KEY")
SELECTION = ("--subjects", "Music", "Geography")


def cli(work: Path, verb: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([verb, "--directory", str(work), *args])
    return code, out.getvalue(), err.getvalue()


def listing(work: Path, *args: str) -> list[dict]:
    code, out, err = cli(work, "batch-list", "--json", *args)
    assert code == 0, out + err
    return json.loads(out)


@pytest.fixture
def gemini(tmp_path: Path) -> Iterator[tuple[Path, GeminiEmulator]]:
    copy_sample(tmp_path)
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    with GeminiEmulator() as emu, pytest.MonkeyPatch.context() as patch:
        for name in ENV_SETTINGS:
            patch.delenv(name, raising=False)
        patch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
        patch.setenv("GEMINI_API_KEY", "fake-ledger-key")
        yield tmp_path, emu


def live_remote(emu: GeminiEmulator) -> set[str]:
    return {
        n for n in emu.job_names() if emu.job_state(n) not in ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")
    }


def test_a_setting_change_leaves_no_remote_job_out_of_the_ledger(gemini) -> None:
    work, emu = gemini
    code, out, err = cli(work, "batch-create", "--provider", "gemini", *SELECTION)
    assert code == 0, out + err
    first = set(emu.job_names())
    assert len(first) == 2
    code, out, err = cli(
        work, "batch-create", "--provider", "gemini", *SELECTION, "--config", "temperature=0.5"
    )
    assert code == 0, out + err
    assert len(emu.job_names()) == 4  # the new settings need new jobs
    jobs = listing(work)
    assert {j["name"] for j in jobs} == set(emu.job_names())  # nothing the ledger does not show
    old = [j for j in jobs if j["name"] in first]
    assert {j["status"] for j in old} == {"superseded"}
    # superseded jobs are cancelled when replaced: only the new ones still run
    assert live_remote(emu) == set(emu.job_names()) - first
    assert all(j["settings"]["temperature"] == 0.2 for j in old)

    # every ledger job can be reached by its name; --all cancels every live one
    name = sorted(first)[0]
    code, out, err = cli(work, "batch-cancel", "--job-names", name)
    assert code == 0 and "unknown" not in err, out + err
    code, out, err = cli(work, "batch-cancel", "--all")
    assert code == 0, out + err
    assert live_remote(emu) == set()
    assert {j["state"] for j in listing(work, "--refresh")} == {"CANCELLED"}


def test_fetch_uses_the_provider_and_settings_of_the_created_jobs(gemini) -> None:
    work, emu = gemini
    code, out, err = cli(
        work, "batch-create", "--provider", "gemini", *SELECTION, "--config", "temperature=0.4"
    )
    assert code == 0, out + err
    created = emu.batch_creations
    code, out, err = cli(work, "batch-fetch")  # no --provider, no --config: the ledger knows
    assert code == 75, out + err  # pending
    assert emu.batch_creations == created
    emu.complete_all()
    code, out, err = cli(work, "batch-fetch")
    assert code == 0, out + err
    assert emu.batch_creations == created
    rows = read_rows(work / "Documents" / "combined-report.csv")
    assert rows and {r["provider"] for r in rows} == {"gemini"}
    assert {r["subject"] for r in rows} == {"Music", "Geography"}
    listed = listing(work)
    assert {j["status"] for j in listed} == {"completed"}
    assert {j["provider"] for j in listed} == {"gemini"}


def test_list_refresh_asks_the_provider_for_state_and_progress(gemini) -> None:
    work, emu = gemini
    code, out, err = cli(work, "batch-create", "--provider", "gemini", *SELECTION)
    assert code == 0, out + err
    assert {j["state"] for j in listing(work)} == {"PENDING"}
    emu.complete_all()
    refreshed = listing(work, "--refresh")
    assert {j["state"] for j in refreshed} == {"SUCCEEDED"}
    assert all(j["progress"]["succeeded"] == j["progress"]["total"] > 0 for j in refreshed)
    code, out, err = cli(work, "batch-list", "--refresh")
    assert code == 0 and "SUCCEEDED" in out


def test_a_superseded_job_that_could_not_be_cancelled_stays_reachable(gemini) -> None:
    work, emu = gemini
    code, out, err = cli(work, "batch-create", "--provider", "gemini", *SELECTION)
    assert code == 0, out + err
    first = set(emu.job_names())
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GEMINI_API_KEY")  # an offline run in a shell without the key
        code, out, err = cli(work, "batch-create", "--provider", "offline", *SELECTION)
    assert code == 0, out + err
    assert live_remote(emu) == first  # could not be cancelled without the key...
    jobs = {j["name"]: j for j in listing(work)}
    assert {jobs[n]["status"] for n in first} == {"superseded"}
    assert all("not cancelled" in jobs[n]["note"] for n in first)
    code, out, err = cli(work, "batch-cancel", "--all")  # ...and is reached later, with the key
    assert code == 0, out + err
    assert live_remote(emu) == set()


def test_the_live_jobs_of_a_job_id_follow_every_rewrite_of_the_ledger(tmp_path: Path) -> None:
    from llm_categoriser import remote_ledger
    from llm_categoriser.records import LedgerJob, RecordError
    from llm_categoriser.settings import resolve

    layout = resolve({"data_dir": str(tmp_path / "data")}, env={}).layout

    def entry(name: str, job: str, created_at: str) -> LedgerJob:
        return LedgerJob(
            provider="gemini", name=name, job=job, model="m", settings={}, batches=[], created_at=created_at
        )

    remote_ledger.save(layout, entry("batches/b", "Music-01", "2026-01-02"))
    remote_ledger.save(layout, entry("batches/a", "Music-01", "2026-01-01"))
    remote_ledger.save(layout, entry("batches/c", "Geography-01", "2026-01-01"))
    assert [e.name for e in remote_ledger.live_of(layout, "Music-01")] == ["batches/a", "batches/b"]
    # another process marks one completed and records a new job: the next look sees both
    done = entry("batches/a", "Music-01", "2026-01-01")
    done.status = "completed"
    remote_ledger.save(layout, done)
    remote_ledger.save(layout, entry("batches/d", "Music-01", "2026-01-03"))
    assert [e.name for e in remote_ledger.live_of(layout, "Music-01")] == ["batches/b", "batches/d"]
    assert [e.name for e in remote_ledger.live_of(layout, "Geography-01")] == ["batches/c"]
    damaged = remote_ledger.ledger_file(layout, "gemini", "batches/b")
    damaged.write_text("{not json")
    with pytest.raises(RecordError, match=re.escape(str(damaged))):
        remote_ledger.live_of(layout, "Music-01")
