"""Batch mode: submit a remote job per group of batches, fetch it once done (docs/DESIGN.md §7)."""


localrules:
    submit,
    fetch,


rule submit:
    input:
        spec=LAYOUT.pattern("job_spec"),
        batches=job_batch_files,
    output:
        LAYOUT.pattern("handle"),
    log:
        LAYOUT.pattern("log_submit"),
    run:
        from llm_categoriser.steps import run_submit

        run_submit(
            wildcards.job,
            input.batches,
            output[0],
            log[0],
            SETTINGS,
            TARGETS.job_batch_indexes(wildcards.job),
        )


rule fetch:
    input:
        handle=LAYOUT.pattern("handle"),
        batches=job_batch_files,
    output:
        LAYOUT.pattern("job_results"),
    log:
        LAYOUT.pattern("log_fetch"),
    run:
        from llm_categoriser.steps import run_fetch

        run_fetch(
            wildcards.job, input.handle, input.batches, output[0], log[0], SETTINGS
        )
