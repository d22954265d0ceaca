"""LanguageTool flag triage with an LLM, as a Snakemake pipeline.

The package holds all of the logic; the Snakemake rules and scripts only call it.
Nothing in here imports Snakemake, so every module is unit-testable on its own.
"""

__version__ = "0.1.0"
