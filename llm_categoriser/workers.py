"""Worker processes for the CPU-bound work of a large run (docs/DESIGN.md §9, §11).

Snakemake runs the jobs of ``run:`` rules as threads of its own process (§11), where pure
Python shares one core under the GIL. A large run therefore keeps one pool of worker
processes for the life of the Snakemake process: the plan of a large corpus is made there
(``plan.py``), and, once the plan is known to be large (``use_for_jobs``), the jobs whose work
is pure Python on files (an offline ``categorise`` job, a ``merge`` job) run there too: the
job's thread hands the whole job (same function, same arguments) to a worker and waits,
exactly as if Snakemake had started the job in a process of its own. Every output is still
written atomically by the job itself, and every job reads only its files, so a job gives the
same bytes in a worker as in a thread.

Workers are spawned, not forked (Snakemake's process has threads), and made on first use:
each takes time to start and import the package (docs/DESIGN.md §9), so a small run never
starts one.
A worker is started without this process's main module (§28): it runs functions of the
package only, and the main module of a run started as ``snakemake ...`` is Snakemake's
command-line script, whose import would only delay it.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import context, spawn
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

MAX_WORKERS = 4

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_jobs = False  # whether jobs go to the workers (this process is a large run's main process)
_given: int | None = None  # the cores Snakemake was given, when known


def limit_cores(given: int | None) -> None:
    """The cores Snakemake was given (``--cores``; a cluster job's CPUs): the workers never
    outnumber them. ``None``: not known (a cluster run's main process), the machine's cores."""
    global _given
    _given = given if given is not None and given > 0 else None


def cores() -> int:
    """The cores this process may use: those it was given, at most the machine's."""
    machine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return machine if _given is None else min(machine, _given)


def size() -> int:
    """How many workers a pool has: one per core, at most ``MAX_WORKERS``."""
    return min(cores(), MAX_WORKERS)


_starting = threading.local()  # whether this thread is starting a worker (its main not sent)
_preparation_data = spawn.get_preparation_data
_installed = False


def _preparation_data_of_worker(name: str) -> dict[str, Any]:
    """What a spawned process is told of this one before it runs (``multiprocessing.spawn``),
    without the main module when this thread is starting a worker: the child would otherwise run
    the main module's file again as ``__mp_main__`` (``snakemake``'s script imports Snakemake's
    command-line interface). Any other process started meanwhile, in any thread, is told all."""
    data = _preparation_data(name)
    if getattr(_starting, "worker", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


class _WorkerProcess(context.SpawnProcess):
    """A spawned process started without this process's main module (docs/DESIGN.md §28)."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        global _installed
        if not _installed:  # once; for any other start it returns what it returned before
            spawn.get_preparation_data, _installed = _preparation_data_of_worker, True
        _starting.worker = True
        try:  # the launch reads the data in this thread, before it returns
            return context.SpawnProcess._Popen(process_obj)
        finally:
            _starting.worker = False


class _WorkerContext(context.SpawnContext):
    Process = _WorkerProcess


def _executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=_WorkerContext(), initializer=_ignore_interrupts)


def pool() -> ProcessPoolExecutor:
    """The process's pool of workers, made on first use (its workers start when work comes)."""
    global _pool, _pool_size
    with _lock:
        if _pool is None:
            _pool_size = size()
            _pool = _executor(_pool_size)
        return _pool


def warm(modules: tuple[str, ...]) -> None:
    """Start the pool's workers now, each importing ``modules``, for work known to be coming (a
    large corpus's plan) while this process still reads its input: a worker's start and imports then
    overlap that reading instead of following it. No worker with one core."""
    if size() <= 1:
        return
    current = pool()
    for _ in range(_pool_size):  # each submission starts a worker while none is idle
        current.submit(_import, modules)


def _import(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


def submit_apart(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """``function(*args)`` in a new process of its own, which ends with it: work that runs beside
    this thread's when the pool's workers (and their memory) are gone; it starts as they do."""
    executor = _executor(1)
    try:
        return executor.submit(function, *args, **kwargs)
    finally:
        executor.shutdown(wait=False)  # the process stops once the function has returned


def _ignore_interrupts() -> None:
    """A worker leaves Ctrl-C to Snakemake (the terminal sends it to every process of the run): it
    finishes the job in hand, whose outputs are written atomically, and ends with the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def pool_if_any() -> ProcessPoolExecutor | None:
    """The pool, if one was made (and not shut down)."""
    return _pool


def shutdown() -> None:
    """Stop the workers (they are idle; a run's end also stops them)."""
    global _pool
    with _lock:
        current, _pool = _pool, None
    if current is not None:
        current.shutdown(wait=True, cancel_futures=True)


def use_for_jobs(large: bool) -> None:
    """Whether the jobs of this process run in the workers: yes in the main Snakemake process of
    a large run on more than one core; otherwise the workers planning left are stopped."""
    global _jobs
    _jobs = large and size() > 1
    if not _jobs:
        shutdown()


def takes_jobs() -> bool:
    return _jobs


def job_slots(local: bool, remote_provider: bool = False) -> tuple[int, int]:
    """Snakemake ``threads`` and units of the ``worker_jobs`` resource of a job that can go to
    the workers (docs/DESIGN.md §11).

    When it does (a local run whose jobs go to the workers, not a job of a provider that calls
    an API): no thread, so that Snakemake keeps more such jobs under way than there are workers
    and a worker that finishes one finds the next waiting instead of idling while Snakemake
    schedules it (the workers, one per core given, bound the CPU), and one ``worker_jobs`` unit,
    whose total in the profiles bounds how many are under way (Ctrl-C waits for those). Otherwise
    one core and no unit.
    """
    return (0, 1) if _jobs and local and not remote_provider else (1, 0)


def run(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args)`` in a worker; its exception, if any, is raised here.

    ``function`` must be importable by name and its arguments and result picklable. A worker
    that died (killed, out of memory) breaks the pool: the job fails with that error and the
    next job gets a new pool.
    """
    current = pool()
    try:
        return current.submit(function, *args, **kwargs).result()
    except BrokenProcessPool:
        global _pool
        with _lock:
            if _pool is current:
                _pool = None
        raise
