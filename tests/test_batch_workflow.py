"""Gemini sync and batch mode through Snakemake, with the real SDK against the loopback emulator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import copy_sample
from support.emulators.gemini import Endpoint, Fault, GeminiEmulator
from support.workflow import job_counts, planned_batches, read_rows, snakemake

from llm_categoriser import remote_jobs, remote_ledger
from llm_categoriser.answers import drain, load_answer
from llm_categoriser.providers.gemini import batch as batch_backend
from llm_categoriser.providers.gemini.batch import GeminiBatchBackend
from llm_categoriser.records import PlannedBatches, RemoteJobHandle, read_record
from llm_categoriser.remote_jobs import RemoteJobStep, fetch, submit
from llm_categoriser.settings import resolve

pytestmark = pytest.mark.slow
FAKE_KEY = "AIzaSy-FAKE-secret-7f3c9e21d4"


@pytest.fixture
def emu():
    with GeminiEmulator(batch_mode="manual") as emulator:
        yield emulator


def run(work: Path, emu: GeminiEmulator, *args: str, check: bool = True, key: str = FAKE_KEY):
    env = {"GOOGLE_GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": key}
    proc = snakemake(work, "--config", "provider=gemini", *args, env=env, check=check)
    return proc, proc.stdout + proc.stderr


def batch(work, emu, *extra, check=False):
    return run(work, emu, "mode=batch", *extra, "--keep-going", check=check)


def batch_until_done(work, emu, *extra):
    """Submit, let the emulator finish every job, fetch: the second run's result."""
    batch(work, emu, *extra)
    emu.complete_all()
    return batch(work, emu, *extra)


def csvs(work: Path) -> dict[str, str]:
    return {
        str(p.relative_to(work)): p.read_text(encoding="utf-8")
        for p in sorted((work / "Documents").glob("*/document_reports/*.csv"))
    }


def handles(work: Path) -> list[RemoteJobHandle]:
    return [
        RemoteJobHandle.model_validate_json(p.read_text())
        for p in sorted((work / "data" / "jobs").glob("*/handle.json"))
    ]


def all_rows(work: Path) -> list[dict[str, str]]:
    return [r for p in sorted((work / "Documents").glob("*/document_reports/*.csv")) for r in read_rows(p)]


def assert_no_secret(work: Path, *outputs: str) -> None:
    for path in work.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), f"API key written to {path}"
    for text in outputs:
        assert FAKE_KEY not in text


def test_sync_and_batch_modes_give_the_same_csvs(tmp_path, emu):
    sync_dir, batch_dir = tmp_path / "sync", tmp_path / "batch"
    copy_sample(sync_dir)
    copy_sample(batch_dir)
    _, sync_out = run(sync_dir, emu, "--resources", "api=2")
    rows = all_rows(sync_dir)
    assert len(rows) == 197 and {r["status"] for r in rows} == {"ok"}
    assert {r["provider"] for r in rows} == {"gemini"}
    assert emu.generate_content_calls == planned_batches(sync_dir)

    proc, first = batch(batch_dir, emu)
    assert proc.returncode != 0
    jobs = handles(batch_dir)
    assert len(jobs) == emu.batch_creations == 4
    assert "PENDING for 0 min" in first and "/gcse-geography---guidance-for-teaching batches 0-" in first
    proc, again = batch(batch_dir, emu)
    assert proc.returncode != 0 and emu.batch_creations == 4
    emu.complete_all()
    proc, done = batch(batch_dir, emu)
    assert proc.returncode == 0, done
    assert csvs(batch_dir) == csvs(sync_dir)
    assert "Nothing to be done" in batch(batch_dir, emu, "--dry-run")[1]
    print(f"\nbatch jobs: {emu.batch_creations}, largest inline payload: {emu.max_inline_batch_bytes} bytes")
    assert_no_secret(batch_dir, first, again, done)
    assert_no_secret(sync_dir, sync_out)


def test_failed_job_is_reported_and_resubmitted(work, emu):
    emu.plan_next_batch(final_state="FAILED", error={"code": 13, "message": "backend exploded"})
    proc, out = batch_until_done(work, emu)
    assert proc.returncode != 0
    assert "ended FAILED (backend exploded); the next run resubmits it (attempt 2 of 3)" in out
    assert emu.batch_creations == 4
    proc, out = batch_until_done(work, emu)
    assert proc.returncode == 0 and emu.batch_creations == 5, out
    assert {r["status"] for r in all_rows(work)} == {"ok"}


@pytest.mark.parametrize("state", ["EXPIRED", "CANCELLED"])
def test_dead_jobs_give_explicit_failures_after_the_last_attempt(work, emu, state):
    emu.set_default_batch_plan(final_state=state)
    proc, out = batch_until_done(work, emu, "max_job_attempts=1")
    assert f"ended {state}" in out and "no attempts left" in out
    proc, out = batch(work, emu, "max_job_attempts=1")
    assert proc.returncode == 0, out
    rows = all_rows(work)
    assert len(rows) == 197
    assert {r["status"] for r in rows} == {"failed"}
    assert all("abandoned" in r["error"] for r in rows)
    assert emu.batch_creations == 4


def test_item_errors_and_bad_answers_are_asked_again_alone(work, emu):
    faults = {
        0: Fault.MALFORMED_JSON,
        1: Fault.MISSING_IDS,
        2: Fault.DUPLICATE_IDS,
        3: Fault.UNKNOWN_IDS,
        4: Fault.TRUNCATED_JSON,
    }
    emu.set_default_batch_plan(item_errors=[5], answer_faults=faults, shuffle=True)
    proc, out = batch_until_done(work, emu)
    assert proc.returncode == 0, out
    rows = all_rows(work)
    assert len(rows) == 197 and {r["status"] for r in rows} <= {"ok", "repaired"}
    # only the faulty items were asked again, synchronously, and no job was created twice
    assert 0 < emu.generate_content_calls <= 4 * 6
    assert emu.batch_creations == 4


def test_responses_without_metadata_are_matched_by_position(work, emu):
    emu.set_default_batch_plan(drop_metadata=True)
    proc, out = batch_until_done(work, emu)
    assert proc.returncode == 0, out
    rows = all_rows(work)
    assert {r["status"] for r in rows} == {"repaired"}
    assert all("matched by position" in r["error"] for r in rows)


def test_large_jobs_go_through_a_jsonl_file(work, emu):
    batch(work, emu, "max_inline_bytes=1000")
    assert emu.uploaded_file_sizes and emu.max_inline_batch_bytes == 0
    assert {h.transport for h in handles(work)} == {"file"}
    emu.complete_all()
    proc, out = batch(work, emu, "max_inline_bytes=1000")
    assert proc.returncode == 0, out
    assert {r["status"] for r in all_rows(work)} == {"ok"}


def test_rate_limited_create_is_not_duplicated(work, emu):
    emu.inject(Fault.RATE_LIMIT_MINUTE, times=2, endpoint=Endpoint.BATCH_GENERATE_CONTENT, retry_delay="0s")
    batch(work, emu)
    assert emu.batch_creations == 4 and len(handles(work)) == 4


def _music_batches(work: Path):
    """Batch-mode settings of ``work`` and the batches of its Music subject (its plan written)."""
    snakemake(work, "--dry-run")  # writes the plan
    settings = resolve(
        {
            "provider": "gemini",
            "mode": "batch",
            "data_dir": str(work / "data"),
            "documents_dir": str(work / "Documents"),
        }
    )
    files = sorted((work / "data" / "plan" / "Music").glob("*/batches.json"))
    return settings, [b for p in files for b in read_record(p, PlannedBatches).batches]


def test_crash_between_create_and_handle_adopts_the_live_job(work, emu, monkeypatch):
    settings, batches = _music_batches(work)
    handle = work / "data" / "jobs" / "Music-01" / "handle.json"
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    backend = GeminiBatchBackend(settings, FAKE_KEY)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(remote_jobs, "write_record", crash)
    with pytest.raises(KeyboardInterrupt):
        submit(RemoteJobStep("Music-01", lambda: batches, str(handle), settings, backend=backend))
    assert emu.batch_creations == 1 and not handle.exists()
    # the ledger recorded the job before its handle: a crash never leaves an unknown remote job
    assert [e.name for e in remote_ledger.read_all(settings.layout)] == emu.job_names()
    monkeypatch.undo()
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    batch_backend._listing.clear()  # a new process knows nothing of the first one's jobs
    backend = GeminiBatchBackend(settings, FAKE_KEY)
    again = submit(RemoteJobStep("Music-01", lambda: batches, str(handle), settings, backend=backend))
    assert again.adopted and emu.batch_creations == 1
    assert json.loads(handle.read_text())["name"] == emu.job_names()[0]
    assert [(e.name, e.status) for e in remote_ledger.read_all(settings.layout)] == [
        (emu.job_names()[0], "live")
    ]


def test_a_fetch_that_fails_part_way_keeps_the_answers_it_checked(work, emu, monkeypatch):
    """A fetch keeps the answers of its remote job for the cache until its results file is
    written, but an answer that needed requests of its own (the job's answer was bad) is paid for
    again if lost: it goes to the cache as soon as it arrives. A fetch that fails part-way hands
    the answers it checked before the failure to the cache too."""
    settings, batches = _music_batches(work)
    assert len(batches) >= 3
    handle = work / "data" / "jobs" / "Music-01" / "handle.json"
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    emu.set_default_batch_plan(answer_faults={0: Fault.MALFORMED_JSON})
    backend = GeminiBatchBackend(settings, FAKE_KEY)
    made = submit(RemoteJobStep("Music-01", lambda: batches, str(handle), settings, backend=backend))
    emu.complete_all()
    first, second = (b.fingerprint for b in made.batches[:2])
    asked = []
    real = remote_jobs.categorise_batch

    def fail_on_the_third(batch, *args, **kwargs):
        asked.append(batch.fingerprint)
        if len(asked) == 3:
            raise KeyboardInterrupt("killed")
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(remote_jobs, "categorise_batch", fail_on_the_third)
    results = work / "data" / "jobs" / "Music-01" / "results.json"
    with pytest.raises(KeyboardInterrupt):
        fetch(
            RemoteJobStep("Music-01", lambda: batches, str(handle), settings, backend=backend), str(results)
        )
    drain()
    assert asked[0] == first and emu.generate_content_calls >= 1  # asked again on its own
    assert load_answer(settings.layout, first) is not None
    assert load_answer(settings.layout, second) is not None and asked[1] == second
    assert load_answer(settings.layout, asked[2]) is None
    assert not results.exists()


def test_invalid_key_stops_with_advice_and_no_secret(work, emu):
    bad = "invalid"
    proc, out = run(work, emu, check=False, key=bad)
    assert proc.returncode != 0
    assert "Gemini rejected the API key" in out and "GEMINI_API_KEY" in out
    proc, out = run(work, emu, check=False)
    assert_no_secret(work, out)


def test_one_issue_edit_in_batch_mode_sends_one_batch(work, emu):
    batch(work, emu)
    emu.complete_all()
    assert batch(work, emu)[0].returncode == 0
    report = work / "Documents" / "language-check-report.csv"
    text = report.read_text(encoding="utf-8")
    report.write_text(text.replace("seperate", "seperatte", 1), encoding="utf-8")
    dry = batch(work, emu, "--dry-run")[1]
    assert job_counts(dry)["submit"] == 1 and job_counts(dry)["fetch"] == 1  # that job's only
    batch(work, emu)
    newest = max(handles(work), key=lambda h: h.created_at)
    assert sum(not b.cached for b in newest.batches) == 1
    assert len(emu.job_requests(newest.name)) == 1  # one batch re-sent, the rest from the cache
    emu.complete_all()
    proc, out = batch(work, emu)
    assert proc.returncode == 0, out
    assert any(r["issue"] == "seperatte" for r in all_rows(work))


def test_every_answer_is_cached_when_a_run_ends_and_lost_ones_come_back_from_the_results(work, emu):
    """A fetch's answers reach the cache after its results file, from a thread; the run waits for
    them before it ends. Lost (a run killed in between), a submit takes them back from the job's
    results file: a one-flag edit still sends one batch."""
    batch(work, emu)
    emu.complete_all()
    assert batch(work, emu)[0].returncode == 0
    cache = work / "data" / "cache"
    assert len(list(cache.glob("*/*.json"))) == planned_batches(work)
    shutil.rmtree(cache)
    report = work / "Documents" / "language-check-report.csv"
    text = report.read_text(encoding="utf-8")
    report.write_text(text.replace("seperate", "seperatte", 1), encoding="utf-8")
    batch(work, emu)
    newest = max(handles(work), key=lambda h: h.created_at)
    assert sum(not b.cached for b in newest.batches) == 1 < len(newest.batches)
    assert len(emu.job_requests(newest.name)) == 1


def test_a_sync_run_takes_back_what_a_killed_batch_run_left_uncached(work, emu):
    """Answers a fetch received but a killed run did not cache are in the job's results file:
    a sync run of the same plan takes them back and sends nothing."""
    batch(work, emu)
    emu.complete_all()
    assert batch(work, emu)[0].returncode == 0
    shutil.rmtree(work / "data" / "cache")
    calls = emu.generate_content_calls
    proc, out = run(work, emu, "--forcerun", "categorise")  # the CSVs are up to date
    assert proc.returncode == 0, out
    assert job_counts(out).get("categorise", 0) > 0, out
    assert emu.generate_content_calls == calls
    assert len(list((work / "data" / "cache").glob("*/*.json"))) == planned_batches(work)


def test_batch_mode_after_a_sync_run_sends_nothing(work, emu):
    """Both modes share the answer cache: what a sync run answered is not submitted again."""
    run(work, emu, "--resources", "api=2")
    calls, before = emu.generate_content_calls, csvs(work)
    assert calls == planned_batches(work)
    # the CSVs are up to date, so batch mode has nothing to do unless its jobs are forced
    proc, out = batch(work, emu, "--forcerun", "submit")
    assert proc.returncode == 0, out
    assert emu.batch_creations == 0 and emu.generate_content_calls == calls
    assert {h.state for h in handles(work)} == {"CACHED"}
    assert csvs(work) == before
