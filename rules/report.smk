"""Per-document CSVs, the combined report and the run summary."""


localrules:
    combine,


rule merge:
    input:
        manifest=f"{DATA}/plan/{{subject}}/{{document}}/manifest.json",
        results=document_results,
    output:
        csv=f"{DOCS}/{{subject}}/document_reports/{{document}}.csv",
        stats=f"{DATA}/merged/{{subject}}/{{document}}.json",
    log:
        f"{DATA}/logs/merge/{{subject}}/{{document}}.log",
    run:
        from llm_categoriser.jobs import run_merge

        run_merge(input.manifest, input.results, output.csv, output.stats, log[0])


rule combine:
    input:
        csvs=document_csvs(),
        stats=document_stats(),
        plan=PLAN_JSON,
    output:
        csv=COMBINED_CSV,
        summary=SUMMARY_JSON,
    log:
        f"{DATA}/logs/combine.log",
    conda:
        "../environment.yml"
    params:
        batch_mode=SETTINGS.mode == "batch",
    script:
        "../scripts/combine.py"


onsuccess:
    from llm_categoriser.outputs import print_summary

    print_summary(SUMMARY_JSON)
