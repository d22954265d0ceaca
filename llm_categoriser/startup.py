"""What the workflow does while Snakemake parses it: settings, the workspace claim, the plan.

Called from ``rules/common.smk``; nothing here imports Snakemake.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from functools import partial
from pathlib import Path
from typing import IO, Any

from . import remote_helper, spending, workers
from .atomic import sweep_stale_temp_files
from .costs.estimate import Estimate
from .layout import INSTANCE_LOCK, SNAKEMAKE_LOCKS
from .plan import PARALLEL_FLAGS, Plan, build_plan
from .providers import check_ready, get_provider
from .settings import Settings, resolve

log = logging.getLogger("llm_categoriser")
SHOWN_WARNINGS = 20


def setup_logging() -> None:
    """Package warnings go to stderr once, whatever imported the package first."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.WARNING)


def claim_workspace(settings: Settings) -> IO[Any]:
    """Clean up after a killed run, when no other run of this workflow is alive (docs/DESIGN.md §13).

    A run killed by SIGKILL or a power loss leaves its Snakemake locks behind (Snakemake then
    refuses every later run until ``snakemake --unlock``) and possibly a hidden temporary file of
    an interrupted atomic write. Every main Snakemake process of this workflow holds a shared
    flock on the instance file for its whole life (the kernel drops it when the process dies,
    however it dies). A process that can take it exclusively knows that no other run is alive:
    the locks left are stale and no temporary file is being written, so it removes them before
    it downgrades to shared and plans (a run starting meanwhile waits for the shared lock before
    it writes anything). The returned handle must stay open for the life of the process.
    """
    instance = Path(INSTANCE_LOCK)
    instance.parent.mkdir(exist_ok=True)
    handle = open(instance, "a")  # noqa: SIM115 - held open for the life of the run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fcntl.flock(handle, fcntl.LOCK_SH)  # another run is alive: its locks are real
        return handle
    stale = sorted(Path(SNAKEMAKE_LOCKS).glob("*.lock"))
    for lock in stale:
        lock.unlink(missing_ok=True)
    temps = sweep_stale_temp_files(settings.documents_dir, settings.data_dir)
    if stale or temps:
        log.warning(
            "a previous run was killed: removed its %d lock file(s) and %d temporary file(s)",
            len(stale),
            len(temps),
        )
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def given_cores(workflow: Any) -> int | None:
    """The cores Snakemake was given: ``--cores`` (``all`` is the machine's), or in cluster mode
    ``--local-cores``; ``None`` when neither is set."""
    resources = workflow.resource_settings
    return resources.cores or resources.local_cores or None


def start(
    config: MutableMapping[str, Any], main_process: bool, cores: int | None = None, local: bool = True
) -> tuple[Settings, Plan, IO[Any] | None, Estimate | None]:
    """Resolve the settings (validated once), claim the workspace, plan and estimate its cost
    (the main process only); CategoriserError if bad. ``cores``: what Snakemake was given, the
    most worker processes this process starts (docs/DESIGN.md §9); ``local``: whether this
    process runs the jobs itself (not a cluster run's)."""
    setup_logging()
    workers.limit_cores(cores)
    settings = resolve(config)
    check_ready(settings)
    # forked before the claim, so that it never holds it (docs/DESIGN.md §13)
    helper = main_process and start_remote_helper(settings, local)
    claim = claim_workspace(settings) if main_process else None
    plan = build_plan(settings)
    # a large run's jobs go to worker processes (docs/DESIGN.md §11); only the main process's
    workers.use_for_jobs(main_process and plan.flags >= PARALLEL_FLAGS)
    report_plan(plan, settings)
    estimate = None
    if main_process:
        reopened = spending.reopen_stopped(settings)
        if reopened:
            log.warning("%d output(s) that the cost cap cut short are redone", len(reopened))
        estimate = spending.estimate_plan(plan, settings)
        print(estimate.describe(), file=sys.stderr)
    # after the outputs the cost cap cut short are deleted: their jobs are left for the helper
    if helper and not remote_jobs_left(settings, plan):
        remote_helper.stop()
    return settings, plan, claim, estimate


def start_remote_helper(settings: Settings, local: bool = True) -> bool:
    """Fork the helper that runs the submit and fetch jobs of a batch-mode run, or the
    ``categorise`` jobs of a local sync run (docs/DESIGN.md §7, §11), of a provider that works
    remotely, before planning, so that it imports the provider's SDK meanwhile; return whether
    it runs."""
    if not get_provider(settings.provider).runs_remotely:
        return False
    if settings.mode == "batch":
        return remote_helper.start(partial(warm_backends, settings), workers.cores())
    if not local:  # a cluster run's categorise jobs run on its nodes
        return False
    # at the lowest priority: the plan of a sync run uses both cores (docs/DESIGN.md §9, §11)
    return remote_helper.start(
        partial(warm_providers, settings),
        workers.cores(),
        gently=True,
        prepare=partial(keep_spend_per_job, settings),
    )


def categorise_slots(local: bool, settings: Settings) -> tuple[int, int]:
    """Snakemake ``threads`` and ``worker_jobs`` units of a ``categorise`` job: none of either
    when the run's helper takes the job and the run has no cost cap (the job's thread only waits
    for the helper, so it holds no core, and up to ``api`` of them run beside the merges:
    docs/DESIGN.md §11), else as a job that can go to the workers (``workers.job_slots``). With a
    cap, the jobs under way at once stay as few as the cores: every batch a job has started when
    the cap is reached is still sent (§31)."""
    remote = get_provider(settings.provider).runs_remotely
    if local and remote and settings.max_cost_usd is None and remote_helper.takes_jobs():
        return 0, 0
    return workers.job_slots(local, remote)


def remote_job_slots(local: bool) -> tuple[int, int]:
    """Snakemake ``threads`` and ``worker_jobs`` units of a ``submit`` or ``fetch`` job: when the
    run's helper takes the job, no core (the job's thread only waits for the helper, which runs
    the submissions and fetches under way beside each other, so the merges keep the cores) and
    one unit, whose total in the profiles bounds how many are under way (Ctrl-C waits for those:
    docs/DESIGN.md §7, §11); else one core and no unit. The cost cap needs no core held: a
    submission reserves its estimate with one check-and-reserve under the ledger's lock (§31)."""
    return (0, 1) if local and remote_helper.takes_jobs() else (1, 0)


def remote_jobs_left(settings: Settings, plan: Plan) -> bool:
    """Whether a job of the plan is left for the helper: in batch mode, one without results
    (else the run submits and fetches nothing); in sync mode, one whose result is missing or
    older than its spec."""
    layout = settings.layout
    if settings.mode == "batch":
        return not all(os.path.exists(layout.job_results(job)) for job in plan.jobs)
    for job in plan.jobs:
        try:
            if os.path.getmtime(layout.job_result(job)) < os.path.getmtime(layout.job_spec(job)):
                return True
        except OSError:  # no result yet (or no spec: the job is planned again)
            return True
    return False


def warm_backends(settings: Settings) -> None:
    """Build the batch backend of each provider of the chain (importing its SDK), in the helper
    while Snakemake builds the DAG; a backend that cannot be built is left to the job to report."""
    from .fallback import backend_of, names

    for name in names(settings):
        try:
            backend_of(settings, name)
        except Exception:  # the job that needs it reports why
            continue


def keep_spend_per_job(settings: Settings) -> None:
    """In the helper of a sync run, before it takes a job: without a cost cap, it keeps its
    jobs' spend in memory until each job ends, as the main process does (docs/DESIGN.md §31)."""
    if settings.max_cost_usd is None:
        spending.ledger(settings).defer()


def warm_providers(settings: Settings) -> None:
    """In the helper of a sync run, while Snakemake builds the DAG: make each provider of the
    chain (importing its SDK, building its client) and the modules of a job; a provider that
    cannot be made is left to the job to report."""
    from . import categorise  # noqa: F401 - the modules every job imports
    from .fallback import link_of, names

    for name in names(settings):
        try:
            link_of(settings, name).provider()
        except Exception:  # the job that needs it reports why
            continue


def before_jobs(settings: Settings, estimate: Estimate | None) -> None:
    """Snakemake's ``onstart`` (not on a dry run): refuse a run whose estimate is above
    ``max_cost_usd`` before anything is sent (exit status 1), else start its spend ledger."""
    if estimate is None:
        return
    problem = spending.begin_run(settings, estimate)
    if problem is not None:
        print(problem, file=sys.stderr)
        sys.exit(1)


def off_cluster(local: bool) -> None:
    """Snakemake's ``onstart``, once it knows its executor (it does not while it parses the
    Snakefile, where ``workflow.local_exec`` is always true): in a cluster run the jobs run on
    the nodes, so the helper and the worker processes this process started for them end here
    (docs/DESIGN.md §11)."""
    if not local:
        remote_helper.stop()
        workers.use_for_jobs(False)


DEFAULT_JOB_RATE_LIMIT = (100, 1)  # Snakemake's ``--max-jobs-per-timespan`` default: 100 jobs a second


def drop_default_job_rate_limit(workflow: Any) -> bool:
    """Drop Snakemake's default job rate limit in a local run; return whether it was dropped.

    The limit never binds a local run of this workflow, but after every scheduling round it arms
    a one-second timer that wakes the scheduler again, and these wake-ups pile up while jobs
    wait (docs/DESIGN.md §15). A limit given on the command line, and any cluster run, keep theirs.
    """
    scheduler = getattr(workflow, "scheduler", None)
    limiter = getattr(scheduler, "job_rate_limiter", None)
    if not getattr(workflow, "local_exec", False) or limiter is None:
        return False
    if (limiter.max_jobs, limiter.timespan) != DEFAULT_JOB_RATE_LIMIT:
        return False
    scheduler.job_rate_limiter = None
    return True


def stop_scheduler_timers() -> int:
    """Cancel the wake-up timers Snakemake's scheduler leaves behind; return how many.

    The scheduler arms a one-second ``threading.Timer`` after each of its rounds (its job rate
    limit, ``--max-jobs-per-timespan``), and these threads are not daemons: the interpreter
    waited for the last of them, a second after every run that ran a job. Called from
    ``onsuccess`` and ``onerror``, when no job is left to schedule (docs/DESIGN.md §15).
    """
    timers = [
        thread
        for thread in threading.enumerate()
        if isinstance(thread, threading.Timer)
        and getattr(thread.function, "__module__", "").startswith("snakemake.")
    ]
    for timer in timers:
        timer.cancel()
    return len(timers)


def report_plan(plan: Plan, settings: Settings) -> None:
    for warning in plan.warnings[:SHOWN_WARNINGS]:
        log.warning(warning)
    if len(plan.warnings) > SHOWN_WARNINGS:
        log.warning("... and %d more warning(s)", len(plan.warnings) - SHOWN_WARNINGS)
    for skip in plan.skipped_documents:
        log.warning("skipped %s: %s", skip.document, skip.reason)
    if plan.skipped_rows:
        first = plan.skipped_rows[0]
        log.warning(
            "skipped %d report row(s) with unusable Subject/Filename (first: row %s: %s)",
            len(plan.skipped_rows),
            first.row,
            first.reason,
        )
    state = "unchanged" if plan.cached else f"{plan.files_written} planning file(s) updated"
    print(
        f"Plan: {len(plan.documents)} document(s), {plan.batches} batch(es), "
        f"{plan.flags} flag(s), provider {settings.provider}, mode {settings.mode} "
        f"({state}, {plan.seconds:.2f} s)",
        file=sys.stderr,
    )
    if plan.cascade_line:
        print(plan.cascade_line, file=sys.stderr)
