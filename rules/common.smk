"""Configuration, the plan (computed at parse time) and path helpers shared by the rules."""

import atexit
import gc
import logging
import sys

sys.path.insert(0, workflow.basedir)

from llm_categoriser.errors import CategoriserError
from llm_categoriser.plan import build_plan
from llm_categoriser.settings import SCHEMA_PATH, coerce_booleans, resolve
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

gc.freeze()  # see the end of this file

_pkg_log = logging.getLogger("llm_categoriser")
if not _pkg_log.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    _pkg_log.addHandler(_handler)
    _pkg_log.setLevel(logging.WARNING)


def _claim_workspace(settings):
    """Clean up after a killed run, when no other run of this workflow is alive.

    A run killed by SIGKILL or a power loss leaves its .snakemake/locks behind (Snakemake then
    refuses every later run until `snakemake --unlock`) and possibly a hidden temporary file of
    an interrupted atomic write. Every main Snakemake process of this workflow holds a shared
    flock on .snakemake/llm-categoriser.instance for its whole life (the kernel drops it when
    the process dies, however it dies). A process that can take it exclusively knows that no
    other run is alive: the locks left are stale and no temporary file is being written, so it
    removes them before it downgrades to shared and plans (a run starting meanwhile waits for
    the shared lock before it writes anything).
    """
    import fcntl
    from pathlib import Path

    from llm_categoriser.atomic import sweep_stale_temp_files

    if not workflow.is_main_process:
        return None
    state = Path(".snakemake")
    state.mkdir(exist_ok=True)
    handle = open(state / "llm-categoriser.instance", "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fcntl.flock(handle, fcntl.LOCK_SH)  # another run is alive: its locks are real
        return handle
    stale = sorted((state / "locks").glob("*.lock"))
    for lock in stale:
        lock.unlink(missing_ok=True)
    temps = sweep_stale_temp_files(settings.documents_dir, settings.data_dir)
    if stale or temps:
        _pkg_log.warning(
            "a previous run was killed: removed its %d lock file(s) and %d temporary file(s)",
            len(stale),
            len(temps),
        )
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


try:
    coerce_booleans(config)
    SETTINGS = resolve(config)
    validate(config, schema=str(SCHEMA_PATH))
    _WORKSPACE_CLAIM = _claim_workspace(SETTINGS)
    PLAN = build_plan(SETTINGS)
except CategoriserError as exc:
    raise WorkflowError(str(exc)) from None

for _warning in PLAN.warnings[:20]:
    _pkg_log.warning(_warning)
if len(PLAN.warnings) > 20:
    _pkg_log.warning("... and %d more warning(s)", len(PLAN.warnings) - 20)
for _skip in PLAN.skipped_documents:
    _pkg_log.warning("skipped %s: %s", _skip["document"], _skip["reason"])
if PLAN.skipped_rows:
    _pkg_log.warning(
        "skipped %d report row(s) with unusable Subject/Filename (first: row %s: %s)",
        len(PLAN.skipped_rows),
        PLAN.skipped_rows[0]["row"],
        PLAN.skipped_rows[0]["reason"],
    )
print(
    f"Plan: {len(PLAN.documents)} document(s), {PLAN.batches} batch(es), "
    f"{PLAN.issues} flag(s), provider {SETTINGS.provider}, mode {SETTINGS.mode} "
    f"({'unchanged' if PLAN.cached else f'{PLAN.files_written} planning file(s) updated'}, "
    f"{PLAN.seconds:.2f} s)",
    file=sys.stderr,
)

DOCS = SETTINGS.documents_dir
DATA = SETTINGS.data_dir
COMBINED_CSV = f"{DOCS}/combined-report.csv"
SUMMARY_JSON = f"{DOCS}/run-summary.json"
PLAN_JSON = f"{DATA}/plan/plan.json"
DOC_INDEX = {(d.subject, d.document): d for d in PLAN.documents}


wildcard_constraints:
    subject=r"[^/]+",
    document=r"[^/]+",
    part=r"[0-9]+",
    job=r"[^/]+",


# One unit of the `api` resource per job that talks to a remote model. A constant, not a
# function: resource functions are called once per job while the DAG is built.
API_SLOTS = 0 if SETTINGS.provider == "offline" else 1


JOB_OF = {ref: job for job, refs in PLAN.jobs.items() for ref in refs}


def batch_file(subject, document, batch):
    return f"{DATA}/plan/{subject}/{document}/batches/{batch}.json"


def document_results(wildcards):
    """Sync mode: one result per part; batch mode: the results of the jobs that carry them."""
    doc = DOC_INDEX[(wildcards.subject, wildcards.document)]
    if SETTINGS.mode == "batch":
        jobs = dict.fromkeys(
            JOB_OF[(doc.subject, doc.document, b)] for b in doc.batch_ids
        )
        return [f"{DATA}/jobs/{job}/results.json" for job in jobs]
    parts = doc.parts(SETTINGS.sync_batches_per_job)
    return [
        f"{DATA}/results/{doc.subject}/{doc.document}/part-{part}.json"
        for part in range(1, len(parts) + 1)
    ]


def job_batch_files(wildcards):
    return [batch_file(*ref) for ref in PLAN.jobs[wildcards.job]]


def job_batch_indexes(wildcards):
    return [
        DOC_INDEX[(subject, document)].batch_ids.index(batch)
        for subject, document, batch in PLAN.jobs[wildcards.job]
    ]


def document_csvs():
    return [
        f"{DOCS}/{d.subject}/document_reports/{d.document}.csv" for d in PLAN.documents
    ]


def document_stats():
    return [f"{DATA}/merged/{d.subject}/{d.document}.json" for d in PLAN.documents]


# The workflow process holds ~180,000 long-lived objects after parsing (Snakemake, pydantic,
# the plan) and far more once the DAG exists (millions at x16 of the reference corpus). Each
# full collection rescans every one of them, so collections while the DAG is built cost more
# than linear time: 2.2 s of an 11 s no-op at x16. The start-up heap is frozen here, the
# collector is off while the DAG is built, and `onstart` (after the DAG, before the first job)
# collects once, freezes the DAG and turns the collector back on for the run. Freezing at exit
# skips the final collection, which the operating system makes redundant. Nothing here relies
# on finalisers of objects in reference cycles; files are written atomically and closed
# explicitly. Job processes started elsewhere (a cluster) keep the default behaviour.
gc.freeze()
atexit.register(gc.freeze)
if workflow.is_main_process:
    gc.disable()


onstart:
    gc.collect()
    gc.freeze()
    gc.enable()
