"""Sync mode: one categorise job per job of the plan (docs/DESIGN.md §12, §26).

A job is up to `max_batches_per_job` batches of one subject, the same grouping as batch mode's
remote jobs. Its only input is its spec, which lists every batch's fingerprint, so any change
to one of its batches rewrites it; the job then reruns, and each batch whose fingerprint is
unchanged is answered from the answer cache without a request. Its requests go out
concurrently, bounded by the process's request limiter, not by cores or the `api` resource.
"""


rule categorise:
    input:
        LAYOUT.pattern("job_spec"),
    output:
        LAYOUT.pattern("job_result"),
    log:
        LAYOUT.pattern("log_categorise"),
    threads: job_slot("categorise", 0)
    resources:
        api=API_SLOTS,
        worker_jobs=job_slot("categorise", 1),
    run:
        from llm_categoriser.steps import run_categorise

        run_categorise(input[0], output[0], log[0], SETTINGS)
