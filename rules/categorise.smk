"""Synchronous categorisation: one job per batch.

The prompt templates are not inputs: their digest is part of every batch spec's fingerprint
(`plan.request_settings`), so editing a template rewrites the specs and reruns the batches, and
the DAG carries one input file per job instead of four.
"""


rule categorise:
    input:
        batch=f"{DATA}/plan/{{subject}}/{{document}}/batches/{{batch}}.json",
    output:
        f"{DATA}/results/{{subject}}/{{document}}/{{batch}}.json",
    log:
        f"{DATA}/logs/categorise/{{subject}}/{{document}}/{{batch}}.log",
    resources:
        api=API_SLOTS,
    run:
        from llm_categoriser.jobs import run_categorise

        run_categorise(input.batch, output[0], log[0], SETTINGS)
