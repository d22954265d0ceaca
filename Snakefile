"""Triage LanguageTool flags with an LLM: report -> batches -> categorise -> per-document CSVs."""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/progress.smk"
include: "rules/categorise.smk"
include: "rules/batch.smk"
include: "rules/report.smk"
include: "rules/results.smk"
include: "rules/cascade.smk"


rule all:
    default_target: True
    input:
        LAYOUT.combined_csv,
        LAYOUT.summary,
        RESULTS_VIEW,
