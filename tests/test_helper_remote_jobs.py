"""A batch-mode run's submit and fetch jobs in the run's helper process: beside each other, with
the cost cap, the spend ledger and the ledger of remote jobs as exact as one at a time
(docs/DESIGN.md §7, §22, §31)."""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from support.emulators.gemini import GeminiEmulator

from llm_categoriser import remote_helper, remote_jobs, remote_ledger, spending, startup, steps
from llm_categoriser.plan import build_plan
from llm_categoriser.records import RemoteJobHandle, RemoteJobResults, read_record
from llm_categoriser.settings import Settings, resolve

FAKE_KEY = "AIzaSy-FAKE-helper-0000"


@pytest.fixture
def emu():
    with GeminiEmulator() as emulator:
        yield emulator


@pytest.fixture
def one_thread(monkeypatch):
    """pytest's own threads do not count: the helper is forked as by the main Snakemake process."""
    monkeypatch.setattr(remote_helper.threading, "active_count", lambda: 1)
    yield
    remote_helper.stop()


def batch_settings(work: Path, emu: GeminiEmulator, monkeypatch, **config: object) -> Settings:
    """The settings of a batch-mode gemini run in ``work`` against ``emu`` (the environment is set
    before the helper is forked, which inherits it)."""
    monkeypatch.chdir(work)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
    return resolve({"provider": "gemini", "mode": "batch", "max_batches_per_job": 2, **config})


def _in_threads(function, arguments: list[tuple]) -> list[BaseException]:
    errors: list[BaseException] = []

    def one(args: tuple) -> None:
        try:
            function(*args)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(args,)) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


MEETING = 3  # jobs that wait for each other in the test below


def _meet(step: remote_jobs.RemoteJobStep, *_: object) -> None:
    """In the helper, as a submit or a fetch: leave a mark and wait until ``MEETING`` jobs have left
    theirs (in vain if the jobs go one at a time)."""
    folder = Path(step.settings.data_dir, "meeting")
    folder.mkdir(exist_ok=True)
    Path(folder, step.job).touch()
    deadline = time.monotonic() + 20
    while len(os.listdir(folder)) < MEETING and time.monotonic() < deadline:
        time.sleep(0.01)
    if len(os.listdir(folder)) < MEETING:
        raise RuntimeError(f"{step.job} ran alone")
    assert os.getpid() != int(Path(step.settings.data_dir, "main.pid").read_text())


@pytest.mark.parametrize("rule", ["submit", "fetch"])
def test_submits_and_fetches_run_beside_each_other_in_the_helper(work, emu, monkeypatch, one_thread, rule):
    settings = batch_settings(work, emu, monkeypatch)
    monkeypatch.setattr(remote_jobs, rule, _meet)  # before the fork: the helper has it too
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    Path(settings.data_dir, "main.pid").write_text(str(os.getpid()))
    assert startup.start_remote_helper(settings)
    assert startup.remote_job_slots(True) == (0, 1)  # no core held: more of them under way
    assert startup.remote_job_slots(False) == (1, 0)  # a cluster run's keep theirs
    layout = settings.layout
    jobs = [f"Job-{n:02d}" for n in range(1, MEETING + 1)]
    if rule == "submit":
        arguments = [
            (j, layout.job_spec(j), layout.handle(j), str(work / f"{j}.log"), settings, []) for j in jobs
        ]
        errors = _in_threads(steps.run_submit, arguments)
    else:
        arguments = [
            (j, layout.job_spec(j), layout.handle(j), layout.job_results(j), str(work / f"{j}.log"), settings)
            for j in jobs
        ]
        errors = _in_threads(steps.run_fetch, arguments)
    assert errors == []
    assert sorted(os.listdir(Path(settings.data_dir, "meeting"))) == jobs


def test_without_the_helper_submits_and_fetches_hold_a_core(work, emu, monkeypatch, one_thread):
    batch_settings(work, emu, monkeypatch)
    assert not remote_helper.start(lambda: None, cores=1)
    assert startup.remote_job_slots(True) == (1, 0)


def test_submits_and_fetches_beside_each_other_keep_the_cap_and_the_ledgers_exact(
    work, emu, monkeypatch, one_thread
):
    settings = batch_settings(work, emu, monkeypatch)
    assert startup.start_remote_helper(settings)
    plan = build_plan(settings)
    layout = settings.layout
    assert len(plan.jobs) >= 4
    costs = {}
    for job in plan.jobs:
        batches = steps.job_batches(layout.job_spec(job), settings)[1]
        requests = [remote_jobs.first_request(b) for b in batches]
        costs[job] = spending.expected_cost(settings, requests, batch=True)
    cap = sum(costs.values()) / 2  # room for some of the jobs, not all
    capped = settings.model_copy(update={"max_cost_usd": float(cap)})
    spending.ledger(capped).start(spending.cap(capped))

    arguments = [
        (job, layout.job_spec(job), layout.handle(job), str(work / f"submit-{job}.log"), capped, [])
        for job in plan.jobs
    ]
    assert _in_threads(steps.run_submit, arguments) == []
    handles = {job: read_record(layout.handle(job), RemoteJobHandle) for job in plan.jobs}
    created = [job for job, handle in handles.items() if handle.name]
    refused = [job for job, handle in handles.items() if handle.state == "OVER_BUDGET"]
    assert created and refused and sorted(created + refused) == sorted(plan.jobs)
    record = spending.ledger(capped).read()
    # every reservation counted once, within the cap, and each refused job would not have fitted
    assert record.committed_usd == sum(costs[job] for job in created) <= Decimal(str(capped.max_cost_usd))
    assert all(record.committed_usd + costs[job] > spending.cap(capped) for job in refused)
    # one remote job per admitted job, each recorded in the ledger of remote jobs before its handle
    assert emu.batch_creations == len(created)
    entries = remote_ledger.read_all(layout)
    assert sorted(e.job for e in entries) == sorted(created)
    assert {e.name for e in entries} == {handles[job].name for job in created}

    emu.complete_all()
    arguments = [
        (job, layout.job_spec(job), layout.handle(job), layout.job_results(job), f"fetch-{job}.log", capped)
        for job in plan.jobs
    ]
    assert _in_threads(steps.run_fetch, arguments) == []
    steps._drain_helper()
    spent = sum(
        Decimal(str(read_record(layout.job_results(job), RemoteJobResults).spend.cost_usd)) for job in created
    )
    record = spending.ledger(capped).read()
    assert record.committed_usd == 0  # every reservation released, once
    assert abs(record.spent_usd - spent) < Decimal("1e-9")
    assert {e.status for e in remote_ledger.read_all(layout)} == {"completed"}
