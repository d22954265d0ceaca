"""What the workflow does around the jobs: the scheduler's timers are cancelled at the end."""

from __future__ import annotations

import threading

from llm_categoriser.startup import stop_scheduler_timers


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
