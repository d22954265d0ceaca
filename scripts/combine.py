"""Combine the per-document CSVs into one report and write the run summary (thin wrapper)."""

import sys

from llm_categoriser.outputs import combine

snakemake = globals()["snakemake"]
with open(snakemake.log[0], "w", encoding="utf-8") as log:
    sys.stderr = log
    csvs, stats = snakemake.params.combined
    summary = combine(
        csvs,
        stats,
        snakemake.input.plan,
        snakemake.output.csv,
        snakemake.output.summary,
        ledger_file=snakemake.params.ledger,
        bom=snakemake.params.csv_bom,
        started=snakemake.params.started,
    )
    print(f"{summary.issues} flag(s) in {summary.documents} document(s)", file=log)
