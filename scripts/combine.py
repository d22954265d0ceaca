"""The combine rule under ``--use-conda``: the same step, in the workflow's conda environment
(thin wrapper; without conda the rule runs it in Snakemake's process, docs/DESIGN.md §11)."""

from llm_categoriser.steps import run_combine

snakemake = globals()["snakemake"]
run_combine(
    snakemake.params.combined,
    snakemake.input.plan,
    snakemake.output.csv,
    snakemake.output.summary,
    snakemake.log[0],
    snakemake.params.ledger,
    snakemake.params.csv_bom,
    snakemake.params.started,
)
