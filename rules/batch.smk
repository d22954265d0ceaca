"""Batch mode: submit a remote job per group of batches, fetch it once done (docs/DESIGN.md §7).

As for `categorise`, a job's only planning input is its spec, which lists every batch's
fingerprint: any change to one of its batches rewrites it, and one file per job keeps the DAG
and the scheduler's work per job small.
"""


localrules:
    submit,
    fetch,


rule submit:
    input:
        spec=LAYOUT.pattern("job_spec"),
    output:
        LAYOUT.pattern("handle"),
    log:
        LAYOUT.pattern("log_submit"),
    threads: job_slot("remote_job", 0)
    resources:
        worker_jobs=job_slot("remote_job", 1),
    run:
        from llm_categoriser.steps import run_submit

        run_submit(
            wildcards.job,
            input.spec,
            output[0],
            log[0],
            SETTINGS,
            TARGETS.job_batch_indexes(wildcards.job),
        )


rule fetch:
    input:
        handle=LAYOUT.pattern("handle"),
        spec=LAYOUT.pattern("job_spec"),
    output:
        LAYOUT.pattern("job_results"),
    log:
        LAYOUT.pattern("log_fetch"),
    threads: job_slot("remote_job", 0)
    resources:
        worker_jobs=job_slot("remote_job", 1),
    run:
        from llm_categoriser.steps import run_fetch

        run_fetch(
            wildcards.job, input.spec, input.handle, output[0], log[0], SETTINGS
        )
