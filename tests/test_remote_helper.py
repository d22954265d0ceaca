"""The helper process of a run of a remote provider: a job gives there what it gives in its thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO

from llm_categoriser import remote_helper
from llm_categoriser.remote_jobs import PendingJob


def _nothing() -> None:
    pass


def _where(value: int) -> tuple[int, bool, int]:
    return os.getpid(), remote_helper.takes_jobs(), value * 2


def _pending() -> None:
    raise PendingJob("batches/1e84 Music/a batches 0-3: PENDING for 3 min")


class Unpicklable(Exception):
    def __init__(self, first: str, second: str) -> None:  # pickle calls it with one argument
        super().__init__(f"{first} and {second}")


def _unpicklable() -> None:
    raise Unpicklable("this", "that")


def _die() -> None:
    os._exit(3)


@pytest.fixture
def helper():
    made = remote_helper.Helper(_nothing)
    yield made
    made.stop()


@pytest.fixture
def started(monkeypatch):
    """This process's helper, as the main Snakemake process starts it."""
    monkeypatch.setattr(remote_helper.threading, "active_count", lambda: 1)  # pytest's threads
    assert remote_helper.start(_nothing, cores=2)
    yield
    remote_helper.stop()


def test_a_job_runs_in_the_helper_and_returns_its_result(helper):
    pid, takes_jobs, doubled = helper.run(_where, 21)
    assert pid == helper.process.pid != os.getpid()
    assert doubled == 42
    assert takes_jobs is False  # inside the helper, a job runs where it is


def test_a_job_runs_in_the_folder_of_its_caller(helper, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # after the fork: the job's relative paths are the caller's
    assert helper.run(os.getcwd) == str(tmp_path)


def test_a_pending_job_fails_in_its_thread_with_its_own_exception(helper):
    with pytest.raises(PendingJob, match="PENDING for 3 min"):
        helper.run(_pending)
    assert helper.run(_where, 1)[2] == 2  # the helper goes on with the next job


def test_an_exception_that_cannot_be_pickled_keeps_its_type_and_message(helper):
    with pytest.raises(RuntimeError, match="Unpicklable: this and that"):
        helper.run(_unpicklable)


def _unpicklable_result() -> object:
    return lambda: None


def test_a_result_that_cannot_be_pickled_fails_its_job_only(helper):
    with pytest.raises(RuntimeError, match="cannot be handed back"):
        helper.run(_unpicklable_result)
    assert helper.run(_where, 5)[2] == 10


def test_jobs_of_many_threads_go_to_the_helper_one_at_a_time(started):
    results: list[tuple[int, bool, int]] = []
    threads = [
        threading.Thread(target=lambda n=n: results.append(remote_helper.run(_where, n))) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r[2] for r in results) == [2 * n for n in range(8)]
    assert {r[0] for r in results} == {remote_helper._helper.process.pid} != {os.getpid()}


def _meet(folder: str, name: str, others: int, patience: float = 20.0) -> tuple[int, int]:
    """Leave a mark and wait (up to ``patience`` seconds) until ``others`` more jobs left theirs;
    return this process and the marks seen then."""
    Path(folder, name).touch()
    deadline = time.monotonic() + patience
    while len(os.listdir(folder)) < others + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid(), len(os.listdir(folder))


def _hand(hand, arguments: list[tuple]) -> list:
    results: list = []
    threads = [threading.Thread(target=lambda a=a: results.append(hand(_meet, *a))) for a in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_jobs_handed_beside_each_other_run_at_once_in_the_helper(started, tmp_path):
    results = _hand(remote_helper.run_beside, [(str(tmp_path), str(n), 3) for n in range(4)])
    assert [count for _, count in results] == [4] * 4  # each saw the three others under way
    assert {pid for pid, _ in results} == {remote_helper._helper.process.pid}


def test_jobs_handed_one_at_a_time_never_meet(started, tmp_path):
    results = _hand(remote_helper.run, [(str(tmp_path), str(n), 1, 1.0) for n in range(2)])
    # the first waited for the second in vain; the second found the first's mark
    assert sorted(count for _, count in results) == [1, 2]


def _sleep_then_die(seconds: float) -> None:
    time.sleep(seconds)
    os._exit(3)


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_dead_helper_fails_every_job_it_had_and_the_next_run_in_their_threads(started):
    errors: list[BaseException] = []

    def one(function, seconds: float) -> None:
        try:
            remote_helper.run_beside(function, seconds)
        except remote_helper.HelperDied as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=one, args=(_sleep, 30.0)),
        threading.Thread(target=one, args=(_sleep_then_die, 0.5)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)  # the sleeping job did not wait on
    assert len(errors) == 2
    assert not remote_helper.takes_jobs()
    assert remote_helper.run_beside(_where, 2) == (os.getpid(), False, 4)


def test_a_dead_helper_fails_its_job_and_the_next_jobs_run_in_their_threads(started):
    assert remote_helper.takes_jobs()
    with pytest.raises(remote_helper.HelperDied, match="rerun to redo this job"):
        remote_helper.run(_die)
    assert not remote_helper.takes_jobs()
    assert remote_helper.run(_where, 2) == (os.getpid(), False, 4)


def test_no_helper_with_one_core_or_another_thread_alive(monkeypatch):
    assert not remote_helper.start(_nothing, cores=1)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not remote_helper.start(_nothing, cores=2)
    finally:
        stop.set()
        other.join()
    assert not remote_helper.takes_jobs()
    assert remote_helper.run(_where, 3) == (os.getpid(), False, 6)


START = textwrap.dedent(
    """
    import sys
    from llm_categoriser import remote_helper
    from llm_categoriser.startup import off_cluster, start

    config = {"provider": sys.argv[1], "mode": sys.argv[2]}
    start(config, main_process=True, cores=int(sys.argv[3]), local=sys.argv[4] == "True")
    if len(sys.argv) > 5:  # Snakemake's onstart, once it knows its executor
        off_cluster(sys.argv[5] == "True")
    print(remote_helper.takes_jobs())
    """
)


def _starts_helper(
    work, provider: str, mode: str, cores: int = 2, local: bool = True, executor_local: bool | None = None
) -> bool:
    env = {**os.environ, "GEMINI_API_KEY": "AIzaSy-FAKE-key", "PYTHONPATH": str(REPO)}
    onstart = [] if executor_local is None else [str(executor_local)]
    proc = subprocess.run(
        [sys.executable, "-c", START, provider, mode, str(cores), str(local), *onstart],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip().splitlines()[-1] == "True"


def test_only_a_run_of_a_remote_provider_with_jobs_left_forks_the_helper(work):
    assert _starts_helper(work, "gemini", "batch")
    assert _starts_helper(work, "gemini", "sync")
    assert not _starts_helper(work, "gemini", "batch", cores=1)
    assert not _starts_helper(work, "gemini", "sync", cores=1)
    assert not _starts_helper(work, "gemini", "sync", local=False)  # a cluster run's nodes run them
    # Snakemake parses the Snakefile before it knows its executor: a cluster run's onstart ends
    # the helper forked meanwhile
    assert not _starts_helper(work, "gemini", "sync", executor_local=False)
    assert _starts_helper(work, "gemini", "sync", executor_local=True)
    assert not _starts_helper(work, "offline", "batch")  # nothing of it runs remotely
    assert not _starts_helper(work, "offline", "sync")
    jobs = [p.stem for p in (work / "data" / "plan" / "jobs").glob("*.json")]
    assert jobs
    for job in jobs:  # every job fetched: nothing left to submit or fetch
        (work / "data" / "jobs" / job).mkdir(parents=True, exist_ok=True)
        (work / "data" / "jobs" / job / "results.json").write_text("{}")
    assert not _starts_helper(work, "gemini", "batch")
    assert _starts_helper(work, "gemini", "sync")  # no categorise result yet
    results = work / "data" / "results"
    results.mkdir(parents=True, exist_ok=True)
    for job in jobs:  # every job categorised after its spec was written: nothing left
        (results / f"{job}.json").write_text("{}")
    assert not _starts_helper(work, "gemini", "sync")
    spec = work / "data" / "plan" / "jobs" / f"{jobs[0]}.json"
    later = (results / f"{jobs[0]}.json").stat().st_mtime + 5
    os.utime(spec, (later, later))  # its spec changed since: that job runs again
    assert _starts_helper(work, "gemini", "sync")


KILLED = textwrap.dedent(
    """
    import time
    from llm_categoriser import remote_helper

    assert remote_helper.start(lambda: None, cores=2)
    print(remote_helper._helper.process.pid, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_the_helper_dies_with_a_killed_main_process():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    main = subprocess.Popen([sys.executable, "-c", KILLED], env=env, stdout=subprocess.PIPE, text=True)
    assert main.stdout is not None
    helper = int(main.stdout.readline())
    assert _alive(helper)
    main.kill()
    main.wait()
    deadline = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(helper):
        os.kill(helper, signal.SIGKILL)
        pytest.fail("the helper outlived the main process that was killed")


def _alive(pid: int) -> bool:
    """Running (a zombie that no one reaped yet has ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_job_whose_folder_the_helper_cannot_enter_fails_with_that_error(helper, tmp_path, monkeypatch):
    # after the fork: only this process sees the folder it names, which does not exist
    monkeypatch.setattr(remote_helper.os, "getcwd", lambda: str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match="gone"):
        helper.run_beside(_where, 1)
    monkeypatch.undo()
    assert helper.run(_where, 4)[2] == 8  # the helper goes on with the next job
