"""A process forked at start-up that runs the jobs of a provider that works remotely: the submit
and fetch jobs of a batch-mode run, the ``categorise`` jobs of a local sync run (docs/DESIGN.md
§7, §11).

Snakemake runs ``run:`` jobs as threads of its own process (§11), so with instant answers such
a run is bound by the CPU of that one process: importing the provider's SDK, rendering and
sending the requests, reading and checking the answers, all under the GIL beside Snakemake's
own scheduling and the merges, while the second core waits. The main process of such a run
therefore forks one helper before it plans (a fork copies everything already imported); the
helper imports the provider's SDK (building its batch backends or its providers) on the other
core while the main process plans and Snakemake builds the DAG (it is stopped at once when the
plan leaves no job for it), and each such job's thread then hands its whole job (same function,
same arguments) to the helper and waits, as a job on a cluster node would. The helper runs each
job in a thread of its own, so a sync run's ``categorise`` jobs send their requests at once, all
through the helper's one request limiter (``limits.py``) as they did through the main
process's, and a batch-mode run's submissions and fetches wait for the API beside each other
(``run_beside``). Every output
is still written atomically by the job itself, so a job gives the same files wherever it runs,
and a crash of either process loses nothing that is not redone.

The helper is forked only where that is safe: from the main Snakemake process while it has no
other thread (a fork copies no thread, so a lock another thread held would stay held in the
child; the thread that reads the helper's replies starts with the first job), with more than
one core given. It is a daemon: it ends with the run (and takes no Ctrl-C of its own: the jobs
in hand finish, their outputs written atomically), and on Linux it is killed with the main
process however that dies, as a job thread would be; forked before the workspace claim is
taken, it never holds that claim (§13). A helper that died fails the jobs it had and the next
jobs run in their threads again.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any, ParamSpec, TypeVar

PR_SET_PDEATHSIG = 1  # prctl(2)
WARM_NICENESS = 19  # the lowest priority: a gentle warm-up runs only where a core idles
P = ParamSpec("P")
T = TypeVar("T")


class HelperDied(RuntimeError):
    """The helper process ended while it ran a job (killed, out of memory)."""


class Helper:
    """One forked process that runs the jobs the threads of this process hand it, each in a
    thread of its own there; the jobs handed with :meth:`run` go one at a time."""

    def __init__(
        self, warm: Callable[[], None], gently: bool = False, prepare: Callable[[], None] | None = None
    ) -> None:
        """Fork the helper; it runs ``prepare`` (if any) before it takes a job, and ``warm``
        first, or, ``gently``, beside its jobs at the lowest priority (``_warm_gently``)."""
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        self._serial = threading.Lock()  # the jobs that go one at a time (``run``)
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()  # the replies awaited, the reader, the end
        self._waiting: dict[int, Future[bytes]] = {}
        self._tags = itertools.count(1)
        self._reader: threading.Thread | None = None  # started with the first job: no thread at fork
        self._ended = False
        self._connection = ours
        self.process = context.Process(
            target=_serve,
            args=(theirs, ours, warm, os.getpid(), gently, prepare),
            name="llm-categoriser-helper",
            daemon=True,
        )
        self.process.start()
        theirs.close()

    def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``function(*args, **kwargs)`` in the helper, after the other jobs handed with ``run``
        (one at a time); its exception, if any, is raised here."""
        with self._serial:
            return self.run_beside(function, *args, **kwargs)

    def run_beside(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``function(*args, **kwargs)`` in a thread of the helper, beside its other jobs; its
        exception, if any, is raised here."""
        message = pickle.dumps((function, args, kwargs))  # a job that cannot be sent fails here
        folder = os.getcwd()
        reply: Future[bytes] = Future()
        tag = next(self._tags)
        with self._lock:
            if self._ended:
                raise self._died()
            self._waiting[tag] = reply
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read, name="llm-categoriser-helper-replies", daemon=True
                )
                self._reader.start()
        try:
            with self._send_lock:
                self._connection.send((tag, folder, message))
        except (EOFError, OSError) as exc:
            with self._lock:
                self._waiting.pop(tag, None)
            raise self._died() from exc
        ok, value = pickle.loads(reply.result())
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def _read(self) -> None:
        """Hand each reply to the job's thread that waits for it; when the helper ends, fail
        every job it had."""
        while True:
            try:
                tag, data = self._connection.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                reply = self._waiting.pop(tag, None)
            if reply is not None:
                reply.set_result(data)
        with self._lock:
            self._ended = True
            waiting, self._waiting = self._waiting, {}
        for reply in waiting.values():
            reply.set_exception(self._died())
        self._connection.close()

    def _died(self) -> HelperDied:
        return HelperDied(f"the helper process ended ({self.process.exitcode}); rerun to redo this job")

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        """End the helper now (nothing is left for it, or it is idle): its jobs' outputs are
        written atomically, and answers it still had for the cache are recovered from their
        job's results file (``answers.recover_answers``); the run waits for them before it
        ends it (``steps._drain_helper``)."""
        self.process.kill()
        self.process.join()
        with self._lock:
            self._ended = True
            reading = self._reader is not None
        if not reading:  # else the reader meets the end, fails the jobs in hand and closes it
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


def _serve(
    connection: Connection,
    parent_end: Connection,
    warm: Callable[[], None],
    parent: int,
    gently: bool,
    prepare: Callable[[], None] | None = None,
) -> None:
    global _helper, _in_helper
    _helper, _in_helper = None, True
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_end.close()
    if prepare is not None:  # before any job, whatever the warm-up does
        with contextlib.suppress(Exception):
            prepare()
    if gently:  # a thread of its own, at the lowest priority; the jobs are taken meanwhile
        threading.Thread(target=_warm_gently, args=(warm,), name="warm", daemon=True).start()
    else:
        with contextlib.suppress(Exception):  # only an early import: the jobs report their errors
            warm()
    send_lock = threading.Lock()
    while True:
        try:
            tag, folder, message = connection.recv()
        except (EOFError, OSError):
            return
        try:  # the job's paths are relative to the caller's folder (one for every job of a run)
            if folder != os.getcwd():
                os.chdir(folder)
        except OSError as exc:  # the job fails with that error, in its thread
            with send_lock, contextlib.suppress(OSError):
                connection.send((tag, pickle.dumps((False, _sendable(exc)))))
            continue
        threading.Thread(
            target=_job, args=(connection, send_lock, tag, message), name=f"job-{tag}", daemon=True
        ).start()


def _warm_gently(warm: Callable[[], None]) -> None:
    """``warm`` at the lowest scheduling priority (on Linux the niceness of this thread only):
    it takes a core that the planning leaves idle, not one the planning uses (docs/DESIGN.md §11)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_NICENESS)
    with contextlib.suppress(Exception):  # only an early import: the jobs report their errors
        warm()


def _job(connection: Connection, send_lock: threading.Lock, tag: int, message: bytes) -> None:
    """Run one job handed by the main process and send its reply, tagged with the job's number."""
    try:
        function, args, kwargs = pickle.loads(message)
        reply: tuple[bool, Any] = (True, function(*args, **kwargs))
    except BaseException as exc:  # handed to the job's thread, raised there
        reply = (False, _sendable(exc))
    try:
        data = pickle.dumps(reply)
    except Exception as exc:  # a result that cannot be pickled
        data = pickle.dumps((False, RuntimeError(f"the job's result cannot be handed back: {exc}")))
    with send_lock, contextlib.suppress(OSError):  # the main process is gone: nobody waits
        connection.send((tag, data))


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


def start(
    warm: Callable[[], None], cores: int, gently: bool = False, prepare: Callable[[], None] | None = None
) -> bool:
    """Fork the helper if it is safe and pays (see the module's docstring); return whether it
    runs. ``gently``: it warms up at the lowest priority, beside its jobs; ``prepare``: run in it
    before it takes a job (``Helper``)."""
    global _helper
    with _start_lock:
        if _helper is not None or _in_helper:
            return _helper is not None
        if cores < 2 or threading.active_count() != 1:
            return False
        if "fork" not in multiprocessing.get_all_start_methods():
            return False
        _helper = Helper(warm, gently, prepare)
        return True


def takes_jobs() -> bool:
    """Whether this thread's submit or fetch job goes to the helper."""
    return _helper is not None and not _in_helper


def run(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` in the helper, one such job at a time (in this thread when
    there is none); a helper that died fails the jobs it had, and the next jobs run in their own
    threads."""
    helper = _helper
    if helper is None or _in_helper:
        return function(*args, **kwargs)
    try:
        return helper.run(function, *args, **kwargs)
    except HelperDied:
        stop(helper)
        raise


def run_beside(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """As ``run``, but beside the helper's other jobs, each in a thread of its own there."""
    helper = _helper
    if helper is None or _in_helper:
        return function(*args, **kwargs)
    try:
        return helper.run_beside(function, *args, **kwargs)
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
