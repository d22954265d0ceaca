"""Synchronous categorisation: one job per batch."""


rule categorise:
    input:
        batch=f"{DATA}/plan/{{subject}}/{{document}}/batches/{{batch}}.json",
        templates=TEMPLATES,
    output:
        f"{DATA}/results/{{subject}}/{{document}}/{{batch}}.json",
    log:
        f"{DATA}/logs/categorise/{{subject}}/{{document}}/{{batch}}.log",
    resources:
        api=api_slots,
    run:
        from llm_categoriser.jobs import run_categorise

        run_categorise(input.batch, output[0], log[0], SETTINGS)
