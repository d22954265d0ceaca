"""Batch mode: submit a job per group of batches, fetch it once done (DESIGN §5)."""


localrules:
    submit,
    fetch,


rule submit:
    input:
        spec=f"{DATA}/plan/jobs/{{job}}.json",
        batches=job_batch_files,
    output:
        f"{DATA}/jobs/{{job}}/handle.json",
    log:
        f"{DATA}/logs/submit/{{job}}.log",
    run:
        from llm_categoriser.jobs import run_submit

        run_submit(
            wildcards.job,
            input.batches,
            output[0],
            log[0],
            SETTINGS,
            job_batch_indexes(wildcards),
        )


rule fetch:
    input:
        handle=f"{DATA}/jobs/{{job}}/handle.json",
        batches=job_batch_files,
    output:
        f"{DATA}/jobs/{{job}}/results.json",
    log:
        f"{DATA}/logs/fetch/{{job}}.log",
    run:
        from llm_categoriser.jobs import run_fetch

        run_fetch(input.handle, input.batches, output[0], log[0], SETTINGS)
