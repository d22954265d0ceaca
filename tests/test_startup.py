"""Around the jobs: a local run drops the default job rate limit and cancels the scheduler's timers."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from llm_categoriser.startup import drop_default_job_rate_limit, stop_scheduler_timers


def _wake() -> None:  # stands for the scheduler's wake-up
    pass


def _ours() -> None:
    pass


def test_the_schedulers_timers_are_cancelled_and_others_left_alone():
    _wake.__module__ = "snakemake.scheduling.job_scheduler"
    theirs = [threading.Timer(60, _wake) for _ in range(3)]
    mine = threading.Timer(60, _ours)
    for timer in (*theirs, mine):
        timer.start()
    try:
        assert stop_scheduler_timers() == 3
        for timer in theirs:
            timer.join(timeout=5)
            assert not timer.is_alive()
        assert mine.is_alive()
    finally:
        mine.cancel()
        for timer in theirs:
            timer.cancel()


@pytest.mark.parametrize(
    ("local", "limit", "dropped"),
    [(True, (100, 1), True), (True, (10, 1), False), (False, (100, 1), False), (True, None, False)],
)
def test_only_the_default_job_rate_limit_of_a_local_run_is_dropped(local, limit, dropped):
    limiter = None if limit is None else SimpleNamespace(max_jobs=limit[0], timespan=limit[1])
    workflow = SimpleNamespace(local_exec=local, scheduler=SimpleNamespace(job_rate_limiter=limiter))
    assert drop_default_job_rate_limit(workflow) is dropped
    assert (workflow.scheduler.job_rate_limiter is None) is (dropped or limit is None)
