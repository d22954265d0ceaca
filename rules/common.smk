"""Settings, the plan (computed at parse time) and the paths the rules use (all from the package)."""

import atexit
import gc
import sys
import time

sys.path.insert(0, workflow.basedir)

from llm_categoriser.errors import CategoriserError
from llm_categoriser.fallback import names as provider_names
from llm_categoriser.layout import WILDCARDS
from llm_categoriser.providers import get_provider
from llm_categoriser.settings import coerce_booleans
from llm_categoriser.startup import (
    categorise_slots,
    given_cores,
    remote_job_slots,
    start,
)
from llm_categoriser.workers import job_slots
from llm_categoriser.targets import Targets

gc.freeze()  # see the end of this file

RUN_STARTED = time.time()
try:
    coerce_booleans(config)
    SETTINGS, PLAN, _WORKSPACE_CLAIM, ESTIMATE = start(
        config, workflow.is_main_process, given_cores(workflow), workflow.local_exec
    )
except CategoriserError as exc:
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

LAYOUT = SETTINGS.layout
TARGETS = Targets(PLAN, SETTINGS)
# Units of the `api` resource a categorise job takes. A constant, not a function: resource
# functions are called once per job while the DAG is built. The most any provider of the
# fallback chain takes: a spent provider hands its batches to the next inside the same job.
API_SLOTS = max(get_provider(name).api_slots for name in provider_names(SETTINGS))
# Threads and `worker_jobs` units of categorise, merge and remote (submit and fetch) jobs: none
# and one in a local large run, whose jobs go to the worker processes; none of either for a
# categorise job that goes to the helper of a run without a cost cap (docs/DESIGN.md §11); none
# and one for a submit or fetch that goes to the helper (§7). Snakemake knows its executor only
# once it has parsed this file (`workflow.local_exec` is true until then), so both pairs are
# computed here and each job takes its run's when the DAG is built.
JOB_SLOTS = {
    local: {
        "merge": job_slots(local),
        "categorise": categorise_slots(local, SETTINGS),
        "remote_job": remote_job_slots(local),
    }
    for local in (True, False)
}


def job_slot(rule, index):
    """A job's threads (index 0) or `worker_jobs` units (1), local or on a cluster."""
    return lambda wildcards: JOB_SLOTS[workflow.local_exec][rule][index]


wildcard_constraints:
    **WILDCARDS,


# a merge job whose CSVs were deleted (by hand, or by the cost cap) runs again
if workflow.is_main_process:
    TARGETS.reopen_incomplete_merges()


def merge_inputs(wildcards):
    return TARGETS.merge_inputs(wildcards.job)


# The garbage collector stays off while the DAG is built, and `onstart` (after the DAG,
# before the first job) collects once, freezes the DAG and turns it back on: docs/DESIGN.md §14.
gc.freeze()
atexit.register(gc.freeze)
if workflow.is_main_process:
    gc.disable()


onstart:
    from llm_categoriser.startup import (
        before_jobs,
        drop_default_job_rate_limit,
        off_cluster,
    )

    # exits here when the estimate is above max_cost_usd
    before_jobs(SETTINGS, ESTIMATE)
    drop_default_job_rate_limit(workflow)
    off_cluster(workflow.local_exec)
    gc.collect()
    gc.freeze()
    gc.enable()
    start_progress()
