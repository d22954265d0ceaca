"""A sync run's categorise jobs in the run's helper process: side by side, through one request
limiter, with the spend kept as the main process keeps it (docs/DESIGN.md §11, §31)."""

from __future__ import annotations

import os
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from support.emulators.gemini import GeminiEmulator

from llm_categoriser import limits, remote_helper, startup, steps
from llm_categoriser.costs.ledger import SpendLedger, SpendRecord
from llm_categoriser.costs.usage import TokenUsage
from llm_categoriser.plan import build_plan
from llm_categoriser.records import JobResult, read_record
from llm_categoriser.settings import Settings, resolve

FAKE_KEY = "AIzaSy-FAKE-helper-0000"
ONE = TokenUsage(input_tokens=1000, output_tokens=200)


@pytest.fixture
def emu():
    with GeminiEmulator() as emulator:
        yield emulator


def gemini_settings(work: Path, emu: GeminiEmulator, monkeypatch, **config: object) -> Settings:
    """The settings of a sync gemini run in ``work`` against ``emu`` (the environment is set
    before the helper is forked, which inherits it)."""
    monkeypatch.chdir(work)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
    return resolve({"provider": "gemini", "mode": "sync", **config})


@pytest.fixture
def one_thread(monkeypatch):
    """pytest's own threads do not count: the helper is forked as by the main Snakemake process."""
    monkeypatch.setattr(remote_helper.threading, "active_count", lambda: 1)
    yield
    remote_helper.stop()


def test_the_jobs_of_a_sync_run_go_to_the_helper_side_by_side(work, emu, monkeypatch, one_thread):
    settings = gemini_settings(work, emu, monkeypatch)
    assert startup.start_remote_helper(settings, local=True)
    assert remote_helper.takes_jobs()
    assert startup.categorise_slots(True, settings) == (0, 0)  # they hold no core
    capped = settings.model_copy(update={"max_cost_usd": 1.0})
    assert startup.categorise_slots(True, capped) == (1, 0)  # as few at once as the cores
    plan = build_plan(settings)
    assert len(plan.jobs) >= 2
    limits.forget_limiters()
    layout = settings.layout
    errors: list[BaseException] = []

    def job(name: str) -> None:
        try:
            steps.run_categorise(
                layout.job_spec(name), layout.job_result(name), str(work / f"{name}.log"), settings
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(name,)) for name in plan.jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    flags = 0
    for name in plan.jobs:
        result = read_record(layout.job_result(name), JobResult)
        statuses = {item.status for batch in result.batches for item in batch.items.values()}
        assert statuses <= {"ok", "repaired"}
        flags += sum(len(batch.items) for batch in result.batches)
    assert flags == plan.flags
    assert emu.stats()["generate_content_calls"] == plan.batches
    # every request went from the helper: this process never made a limiter, nor a request
    assert limits._registry == {}


def test_a_cluster_run_or_one_core_keeps_its_categorise_jobs(work, emu, monkeypatch, one_thread):
    settings = gemini_settings(work, emu, monkeypatch)
    assert not startup.start_remote_helper(settings, local=False)
    assert startup.categorise_slots(False, settings) == (1, 0)
    assert not remote_helper.start(lambda: None, cores=1)
    assert not remote_helper.takes_jobs()


def _add_and_report(path: str, cap: bool) -> tuple[int, int]:
    """In the helper: two additions, the requests in the file before and after the job's flush."""
    ledger = SpendLedger(path, Path(path).parent / "stops.json")
    if not cap:
        ledger.defer()
    ledger.add(Decimal("0.25"), ONE)
    ledger.add(Decimal("0.25"), ONE)
    before = SpendRecord.model_validate_json(Path(path).read_bytes()).requests_sent
    ledger.flush()
    return before, SpendRecord.model_validate_json(Path(path).read_bytes()).requests_sent


@pytest.mark.parametrize("cap", [None, Decimal("5")])
def test_the_helper_keeps_a_runs_spend_as_the_main_process_does(tmp_path, cap):
    path = tmp_path / "ledger.json"
    helper = remote_helper.Helper(lambda: None)
    try:
        SpendLedger(path, tmp_path / "stops.json").start(cap=cap)  # as onstart, after the fork
        before, after = helper.run_beside(_add_and_report, str(path), cap is not None)
    finally:
        helper.stop()
    # without a cap, in memory until the job ends; with one, in the file at once (the cap stays exact)
    assert (before, after) == ((2, 2) if cap else (0, 2))


def _deferred_here(path: str) -> bool:
    from llm_categoriser.costs import ledger

    return ledger._deferred_of(os.path.abspath(path)) is not None


@pytest.mark.parametrize("cap", [None, 5.0])
def test_the_helper_of_a_run_without_a_cap_defers_its_spend(work, emu, monkeypatch, cap):
    settings = gemini_settings(work, emu, monkeypatch, max_cost_usd=cap)
    # as a sync run starts it: the first job is taken while the warm-up (here endless) goes on
    helper = remote_helper.Helper(
        lambda: time.sleep(600), gently=True, prepare=lambda: startup.keep_spend_per_job(settings)
    )
    try:
        deferred = helper.run_beside(_deferred_here, str(settings.layout.spend_ledger))
    finally:
        helper.stop()
    assert deferred is (cap is None)


def _warm_slowly(folder: str) -> None:
    # written whole, then renamed: the test waits for the name, never reads a file half-written
    Path(folder, "niceness.tmp").write_text(str(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    os.replace(Path(folder, "niceness.tmp"), Path(folder, "niceness"))
    time.sleep(3)
    Path(folder, "warm").touch()


def _niceness_and_warm(folder: str) -> tuple[int, bool]:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), Path(folder, "warm").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_a_gentle_helper_warms_up_at_the_lowest_priority_and_takes_jobs_meanwhile(tmp_path):
    helper = remote_helper.Helper(lambda: _warm_slowly(str(tmp_path)), gently=True)
    try:
        niceness, warmed = helper.run_beside(_niceness_and_warm, str(tmp_path))
        deadline = time.monotonic() + 10
        while not (tmp_path / "niceness").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        helper.stop()
    assert (niceness, warmed) == (os.getpriority(os.PRIO_PROCESS, 0), False)  # a job, at once
    assert int((tmp_path / "niceness").read_text()) == remote_helper.WARM_NICENESS
