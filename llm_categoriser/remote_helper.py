"""A process forked at start-up that runs the submit and fetch jobs of a batch-mode run
(docs/DESIGN.md §7).

Snakemake runs ``run:`` jobs as threads of its own process (§11), so with instant answers a
batch-mode run is bound by the CPU of that one process: importing the provider's SDK, rendering
and sending the requests, reading and checking the answers, all under the GIL beside Snakemake's
own scheduling, while the second core waits. The main process of a batch-mode run therefore
forks one helper before it plans (a fork copies everything already imported); the helper builds
the provider's batch backends (importing its SDK) on the other core while the main process plans
and Snakemake builds the DAG (it is stopped at once when the plan leaves no job to submit or
fetch), and each submit or fetch job's thread then hands its whole job (same function, same
arguments) to the helper and waits, as a job on a cluster node would. Every output is still
written atomically by the job itself, so a job gives the same files wherever it runs, and a
crash of either process loses nothing that is not redone.

The helper is forked only where that is safe: from the main Snakemake process while it has no
other thread (a fork copies no thread, so a lock another thread held would stay held in the
child), with more than one core given. It is a daemon: it ends with the run (and takes no
Ctrl-C of its own: the job in hand finishes, its outputs written atomically), and on Linux it
is killed with the main process however that dies, as a job thread would be; forked before the
workspace claim is taken, it never holds that claim (§13). A helper that died fails the job it
had and the next jobs run in their threads again.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, ParamSpec, TypeVar

PR_SET_PDEATHSIG = 1  # prctl(2)
P = ParamSpec("P")
T = TypeVar("T")


class HelperDied(RuntimeError):
    """The helper process ended while it ran a job (killed, out of memory)."""


class Helper:
    """One forked process that runs one job at a time for the threads of this process."""

    def __init__(self, warm: Callable[[], None]) -> None:
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        self._lock = threading.Lock()
        self._connection = ours
        self.process = context.Process(
            target=_serve, args=(theirs, ours, warm, os.getpid()), name="llm-categoriser-helper", daemon=True
        )
        self.process.start()
        theirs.close()

    def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``function(*args, **kwargs)`` in the helper; its exception, if any, is raised here."""
        with self._lock:
            try:
                self._connection.send((os.getcwd(), function, args, kwargs))
                ok, value = self._connection.recv()
            except (EOFError, OSError) as exc:
                raise HelperDied(
                    f"the batch-mode helper process ended ({self.process.exitcode}); rerun to redo this job"
                ) from exc
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        """End the helper now (nothing is left for it, or it is idle): it writes nothing but
        through a job, and its jobs' outputs are written atomically."""
        self.process.kill()
        self.process.join()
        self._connection.close()


def _die_with(parent: int) -> None:
    """Where the kernel offers it (Linux), the helper is killed when the main process dies,
    however it dies: a killed run's helper never finishes a job behind the next run's back."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the main process died before that
        os._exit(1)


def _serve(connection: Connection, parent_end: Connection, warm: Callable[[], None], parent: int) -> None:
    global _helper, _in_helper
    _helper, _in_helper = None, True
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_end.close()
    with contextlib.suppress(Exception):  # only an early import: the jobs report their errors
        warm()
    while True:
        try:
            folder, function, args, kwargs = connection.recv()
        except (EOFError, OSError):
            return
        try:
            if folder != os.getcwd():  # the job's paths are relative to the caller's folder
                os.chdir(folder)
            reply: tuple[bool, Any] = (True, function(*args, **kwargs))
        except BaseException as exc:  # handed to the job's thread, raised there
            reply = (False, _sendable(exc))
        try:
            connection.send(reply)
        except Exception as exc:  # a result that cannot be pickled (nothing was sent)
            connection.send((False, RuntimeError(f"the job's result cannot be handed back: {exc}")))


def _sendable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its type, message and traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception(exc)).rstrip()
        return RuntimeError(f"{type(exc).__name__}: {exc}\n{text}")


_helper: Helper | None = None
_in_helper = False
_start_lock = threading.Lock()


def start(warm: Callable[[], None], cores: int) -> bool:
    """Fork the helper if it is safe and pays (see the module's docstring); return whether it runs."""
    global _helper
    with _start_lock:
        if _helper is not None or _in_helper:
            return _helper is not None
        if cores < 2 or threading.active_count() != 1:
            return False
        if "fork" not in multiprocessing.get_all_start_methods():
            return False
        _helper = Helper(warm)
        return True


def takes_jobs() -> bool:
    """Whether this thread's submit or fetch job goes to the helper."""
    return _helper is not None and not _in_helper


def run(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` in the helper (in this thread when there is none); a helper
    that died fails the job it had, and the next jobs run in their own threads."""
    helper = _helper
    if helper is None or _in_helper:
        return function(*args, **kwargs)
    try:
        return helper.run(function, *args, **kwargs)
    except HelperDied:
        stop(helper)
        raise


def stop(helper: Helper | None = None) -> None:
    """End the helper (``helper``: only if it is still this process's), if any."""
    global _helper
    with _start_lock:
        current = _helper
        if current is None or (helper is not None and helper is not current):
            return
        _helper = None
    current.stop()
