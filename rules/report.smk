"""Per-document CSVs, the combined report and the run summary.

One merge job per job of the plan writes the CSVs of its documents (docs/DESIGN.md §12): its
output is its record, and the CSVs are rewritten only when their content changed.
"""

from snakemake.settings.types import DeploymentMethod


localrules:
    combine,


rule merge:
    input:
        merge_inputs,
    output:
        LAYOUT.pattern("merge_record"),
    log:
        LAYOUT.pattern("log_merge"),
    threads: job_slot("merge", 0)
    resources:
        worker_jobs=job_slot("merge", 1),
    run:
        from llm_categoriser.steps import run_merge

        run_merge(
            wildcards.job,
            TARGETS.merge_documents(wildcards.job),
            output[0],
            log[0],
            SETTINGS.csv_bom,
        )


# The combined report's inputs: every merge job, the plan, and the record of cap stops (new
# content after a run stopped at max_cost_usd). A filtered run also combines the other
# documents' CSVs (README "Everyday use").
COMBINE_INPUT = dict(
    merged=TARGETS.merge_jobs(),
    plan=LAYOUT.plan_summary,
    cap_stops=LAYOUT.cap_stops,
)
COMBINE_OUTPUT = dict(csv=LAYOUT.combined_csv, summary=LAYOUT.summary)
COMBINE_PARAMS = dict(
    combined=TARGETS.combined_files(),
    csv_bom=SETTINGS.csv_bom,
    started=RUN_STARTED,
    ledger=LAYOUT.spend_ledger,
)


# In Snakemake's process, like every other job; with --use-conda, a script in the workflow's
# conda environment (docs/DESIGN.md §11).
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:

    rule combine:
        # no params: Snakemake records a finished job's params, and imports pandas to do so
        # whenever pandas is installed (docs/DESIGN.md §11)
        input:
            **COMBINE_INPUT,
        output:
            **COMBINE_OUTPUT,
        log:
            LAYOUT.pattern("log_combine"),
        run:
            from llm_categoriser.steps import run_combine

            run_combine(
                COMBINE_PARAMS["combined"],
                input.plan,
                output.csv,
                output.summary,
                log[0],
                COMBINE_PARAMS["ledger"],
                COMBINE_PARAMS["csv_bom"],
                COMBINE_PARAMS["started"],
            )

else:

    rule combine:
        input:
            **COMBINE_INPUT,
        output:
            **COMBINE_OUTPUT,
        log:
            LAYOUT.pattern("log_combine"),
        conda:
            "../environment.yml"
        params:
            **COMBINE_PARAMS,
        script:
            "../scripts/combine.py"


onsuccess:
    from llm_categoriser.outputs import print_summary
    from llm_categoriser.spending import finish_run
    from llm_categoriser.startup import stop_scheduler_timers

    stop_scheduler_timers()  # the process exits without waiting a second for them
    stop_progress()
    print_summary(LAYOUT.summary, TARGETS.merge_jobs(), LAYOUT.spend_ledger)
    finish_run(SETTINGS)  # what the cost cap cut short is redone by the next run


onerror:
    from llm_categoriser.run_outcome import end_of_failed_run
    from llm_categoriser.spending import finish_run
    from llm_categoriser.startup import stop_scheduler_timers

    stop_scheduler_timers()
    stop_progress()
    finish_run(SETTINGS)
    end_of_failed_run(LAYOUT, log, RUN_STARTED)
