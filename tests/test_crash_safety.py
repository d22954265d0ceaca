"""Crash at any moment and lose nothing: the crash harness at a reduced count (``make stress``: full).

One harness run (module fixture) on part of the sample corpus: for sync and batch mode (gemini
provider against the emulator; ``make stress`` adds the offline provider) the pipeline runs once
uninterrupted, then one trial kills the whole Snakemake process group with SIGKILL at 3 seeded
moments in a row and reruns until done, and one more is killed right after the emulator served a
seeded call (a generateContent answer; a batch creation) whose answer is thus lost.
``CRASH_SEED=<n>`` replays a seed; the seed and the kill times are printed and in the assertion
messages.
"""

from __future__ import annotations

import os
import random
import tempfile

import pytest
from support import crash_harness
from support.crash_harness import Options, format_summary

from llm_categoriser.atomic import atomic_write_json, sweep_stale_temp_files

KILLS = 3
MODES = ["sync", "batch"]
SUBJECTS = ("Music", "Welsh-Second-Language")  # 4 documents, 15 batches, 2 batch jobs


def test_sweep_removes_only_the_temp_files_of_killed_writers(tmp_path):
    deep = tmp_path / "data" / "results" / "Music"
    deep.mkdir(parents=True)
    fd, leftover = tempfile.mkstemp(prefix=".p0001-0002.json.", suffix=".tmp", dir=deep)
    os.close(fd)
    kept = ["notes.tmp", ".x.json.tmp", ".x.json.ABCDEFGH.tmp", ".x.json.abc.tmp", "x.json.abcdefgh.tmp"]
    for name in kept:
        (tmp_path / "data" / name).write_text("x")
    atomic_write_json(deep / "p0003-0003.json", {"ok": True})
    removed = sweep_stale_temp_files(tmp_path / "data", tmp_path / "Documents")
    assert [str(p) for p in removed] == [leftover]
    left = sorted(p.name for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert left == sorted([*kept, "p0003-0003.json"])


@pytest.fixture(scope="module")
def report():
    seed = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1, 10**6))
    options = Options(
        subjects=SUBJECTS,
        verbose=False,
        keep_failures=False,
        check_noop=False,
        batch_completion="first_poll",
        reach=0.85,
        latency=0.1,
    )
    result = crash_harness.run(
        {"sample": crash_harness.SAMPLE_DOCUMENTS},
        MODES,
        KILLS,
        seed,
        options,
        per_trial={"sample": KILLS},
        parallel=2,
        event_kills=1,
    )
    print("\n" + format_summary(result))
    return result


def differences(report, *, blocked: bool) -> list[str]:
    """The differences found: reruns blocked by a stale lock, or (``blocked=False``) all others."""
    found = []
    for corpus, section in report["corpora"].items():
        for mode, stats in section["modes"].items():
            if not blocked:
                found += [f"{corpus}/{mode} baseline: {p}" for p in stats["baseline"]["problems"]]
            for trial in stats["trials"]:
                found += [
                    f"{corpus}/{mode} trial {trial['index']} kills at {trial['kill_times']}: {d}"
                    for d in trial["differences"]
                    if d.startswith("[blocked-rerun]") == blocked
                ]
    return found


def replay(report) -> str:
    return (
        f"replay: CRASH_SEED={report['seed']} pytest tests/test_crash_safety.py, or python "
        f"tests/support/crash_harness --corpus sample --modes {','.join(MODES)} --kills {KILLS} "
        f"--kills-per-trial {KILLS} --subjects {','.join(SUBJECTS)} --parallel 2 --no-noop-check "
        f"--batch-completion first_poll --reach 0.85 --latency 0.1 --event-kills 1 --seed {report['seed']}"
    )


@pytest.mark.slow
def test_every_mode_was_killed_and_converged(report):
    for mode, stats in report["corpora"]["sample"]["modes"].items():
        assert stats["kill_points"] >= KILLS, (mode, stats["kill_points"], replay(report))
        assert stats["event_kill_points"] == 1, (mode, replay(report))
        assert stats["runs"] > stats["kill_points"], mode


@pytest.mark.slow
def test_kills_lose_nothing_corrupt_nothing_and_duplicate_no_job(report):
    """Identical CSVs, no lost flag, no partial file after any kill, no extra batch job."""
    found = differences(report, blocked=False)
    assert not found, f"{len(found)} difference(s); {replay(report)}:\n" + "\n".join(found)


@pytest.mark.slow
def test_a_killed_run_does_not_block_the_next_one(report):
    found = differences(report, blocked=True)
    assert not found, f"{len(found)} rerun(s) blocked; {replay(report)}:\n" + "\n".join(found)
