"""The cascade: its classifier, trained on the model answers in data/cache (a deliberate step),
and its answers for each document (decided when the run is planned; docs/DESIGN.md §30).

`train` is not part of `all`: `snakemake --cores 1 train --forcerun train` (or
`python -m llm_categoriser train`) retrains it. `cascade` is local: it only writes what the plan
decided.
"""


localrules:
    train,
    cascade,


rule train:
    input:
        SETTINGS.report,
    output:
        LAYOUT.cascade_model,
    log:
        LAYOUT.pattern("log_train"),
    run:
        from llm_categoriser.steps import run_train

        run_train(output[0], log[0], SETTINGS)


rule cascade:
    input:
        LAYOUT.pattern("cascade_spec"),
    output:
        LAYOUT.pattern("cascade_result"),
    log:
        LAYOUT.pattern("log_cascade"),
    run:
        from llm_categoriser.steps import run_cascade

        run_cascade(input[0], output[0], log[0])
