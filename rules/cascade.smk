"""The cascade's classifier, trained on the model answers in data/cache (a deliberate step).

Not part of `all`: `snakemake --cores 1 train --forcerun train` (or
`python -m llm_categoriser train`) retrains it.
"""


localrules:
    train,


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
