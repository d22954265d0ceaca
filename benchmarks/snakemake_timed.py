#!/usr/bin/env python
"""``python -m snakemake`` with phase timers, for the benchmarks.

Usage: ``python benchmarks/snakemake_timed.py <snakemake arguments>``; it behaves exactly like
``python -m snakemake <arguments>`` (same ``snakemake.cli.main``, same profile lookup, same exit
code) and, when ``BENCH_TIMINGS_FILE`` is set, writes a JSON object with the time spent in each
phase of the run, measured by wrapping Snakemake's own methods:

``import``
    importing ``snakemake.cli`` (the interpreter start before this module runs is ``started_at``,
    a ``time.time()`` the caller can subtract from its own launch time).
``parse``
    the outermost ``Workflow.include`` (reading the Snakefile and ``rules/*.smk``, which builds or
    loads the plan at parse time).
``prepare_dag``
    ``Workflow._prepare_dag`` (persistence and lock set-up).
``build_dag``
    ``Workflow._build_dag``: ``DAG.init`` (resolving every job, its input functions and the
    ``needrun`` decision from file modification times) and checkpoint dependencies.
``postprocess_first``
    the first ``DAG.postprocess`` call (the one ``Workflow.execute`` makes right after building
    the DAG). ``dag = build_dag + postprocess_first`` is what the benchmark reports as the
    DAG-building time; ``postprocess_total`` / ``postprocess_calls`` cover every later call too
    (the scheduler calls it after each finished job).
``main_end``
    from the start of this module to the return of ``snakemake.cli.main`` (``total - main_end``
    is interpreter shutdown: joining threads, atexit handlers).
``total``
    from the start of this module to interpreter exit (the caller adds the interpreter start-up
    before this module runs: ``started_at`` minus its own launch time).

``BENCH_PROFILE=<path>`` additionally runs the whole thing under ``cProfile`` and dumps the stats
there: the main thread (parsing, planning, DAG, scheduling) to ``<path>``, and, with
``BENCH_PROFILE_THREADS=1``, every other thread (the jobs of ``run:`` rules execute in Snakemake's
worker threads with ``force-use-threads``) to ``<path>.threads``, merged. ``BENCH_PROFILE_CPU=1``
times each function by its thread's CPU time instead of the wall clock (a loaded machine or
threads waiting on the network then do not distort where the CPU goes).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

STARTED_AT = time.time()
_T0 = time.perf_counter()
_timings: dict[str, float | int] = {"started_at": STARTED_AT}
_depth = {"include": 0}


def _add(name: str, seconds: float) -> None:
    _timings[name] = float(_timings.get(name, 0.0)) + seconds


def _wrap(
    cls: type,
    attr: str,
    name: str,
    *,
    outermost: str | None = None,
    first: str | None = None,
    count: str | None = None,
) -> None:
    original = getattr(cls, attr)

    def timed(*args, **kwargs):
        if outermost is not None:
            _depth[outermost] += 1
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            if outermost is None or _depth[outermost] == 1:
                _add(name, elapsed)
            if outermost is not None:
                _depth[outermost] -= 1
            if first is not None and first not in _timings:
                _timings[first] = elapsed
            if count is not None:
                _timings[count] = int(_timings.get(count, 0)) + 1

    async def timed_async(*args, **kwargs):
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            _add(name, elapsed)
            if first is not None and first not in _timings:
                _timings[first] = elapsed
            if count is not None:
                _timings[count] = int(_timings.get(count, 0)) + 1

    import inspect

    setattr(cls, attr, timed_async if inspect.iscoroutinefunction(original) else timed)


def _write() -> None:
    _timings["total"] = time.perf_counter() - _T0
    if "build_dag" in _timings:
        _timings["dag"] = float(_timings["build_dag"]) + float(_timings.get("postprocess_first", 0.0))
    path = os.environ.get("BENCH_TIMINGS_FILE")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(_timings, handle, indent=1)


def main() -> None:
    started = time.perf_counter()
    import snakemake.cli
    from snakemake.dag import DAG
    from snakemake.workflow import Workflow

    _timings["import"] = time.perf_counter() - started
    _wrap(Workflow, "include", "parse", outermost="include")
    _wrap(Workflow, "_prepare_dag", "prepare_dag")
    _wrap(Workflow, "_build_dag", "build_dag")
    _wrap(DAG, "postprocess", "postprocess_total", first="postprocess_first", count="postprocess_calls")
    atexit.register(_write)
    sys.argv[0] = "snakemake"
    profile_path = os.environ.get("BENCH_PROFILE")
    if not profile_path:
        _run_main(snakemake.cli.main)
        return
    import cProfile
    import threading

    timer = time.thread_time if os.environ.get("BENCH_PROFILE_CPU") else time.perf_counter
    if os.environ.get("BENCH_PROFILE_THREADS"):
        _profile_threads(profile_path + ".threads", threading, cProfile, timer)
    profiler = cProfile.Profile(timer)

    def dump() -> None:
        profiler.disable()
        profiler.dump_stats(profile_path)

    atexit.register(dump)  # runs before _write (LIFO); main() ends with sys.exit
    profiler.enable()
    _run_main(snakemake.cli.main)


def _run_main(entry) -> None:
    """Run Snakemake's CLI; ``main_end`` marks its return (the rest of ``total`` is shutdown)."""
    try:
        entry()
    finally:
        _timings["main_end"] = time.perf_counter() - _T0


def _profile_threads(path: str, threading, cProfile, timer) -> None:
    """Profile the body of every thread started from now on; merge them into ``path`` at exit."""
    import pstats

    lock = threading.Lock()
    finished: list = []
    original_run = threading.Thread.run

    def run(self):
        profiler = cProfile.Profile(timer)
        profiler.enable()
        try:
            return original_run(self)
        finally:
            profiler.disable()
            with lock:
                finished.append(profiler)

    threading.Thread.run = run

    def merge() -> None:
        with lock:
            profiles = list(finished)
        if profiles:
            stats = pstats.Stats(profiles[0])
            for extra in profiles[1:]:
                stats.add(extra)
            stats.dump_stats(path)

    atexit.register(merge)


if __name__ == "__main__":
    main()
