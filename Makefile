# Entry points: `make run` (the pipeline on the bundled sample corpus, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed-stamp
SNAKEMAKE := $(BIN)/snakemake

.PHONY: setup run test lint format bench stress clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); run make with PYTHON=python3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@# byte-compile the package now: every Snakemake start imports it (matters where
	@# PYTHONDONTWRITEBYTECODE is set, as on many CI images)
	$(BIN)/python -m compileall -q llm_categoriser
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check llm_categoriser scripts tests benchmarks
	$(BIN)/ruff format --check llm_categoriser scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(SNAKEMAKE) --lint

format: $(STAMP)
	$(BIN)/ruff format llm_categoriser scripts tests benchmarks
	$(BIN)/snakefmt Snakefile rules

clean:
	rm -rf data/plan data/results data/jobs data/merged data/logs .snakemake \
		Documents/*/document_reports Documents/combined-report.csv Documents/run-summary.json \
		Documents/report.html Documents/triage.xlsx Documents/languagetool

# Benchmarks on the reference corpus (../shared/corpus); BENCH_ARGS=--quick for a smoke run.
# EARLIER=PATH: a checkout of the earlier tool, measured side by side (EARLIER_PYTHON: its Python,
# default PATH/.venv/bin/python); see docs/BENCHMARKS.md.
EARLIER ?=
EARLIER_PYTHON ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/run_benchmarks.py $(if $(EARLIER),--earlier $(EARLIER)) \
		$(if $(EARLIER_PYTHON),--earlier-python $(EARLIER_PYTHON)) $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_cascade.py

# The corpus through the openai and mistral emulators (sync, batch) and a gemini->openai fallback run.
.PHONY: bench-providers
bench-providers: $(STAMP)
	$(BIN)/python benchmarks/bench_providers.py $(BENCH_ARGS)

# Crash safety (tests/support/crash_harness): SIGKILL the whole run at >= 20 seeded random moments per
# mode (offline, gemini sync, gemini batch against the emulator), rerun until done, compare with an
# uninterrupted run; on the sample corpus and on a temp copy of ../shared/corpus (skipped when
# absent). Prints a summary and the JSON report path; e.g. STRESS_ARGS="--seed 123 --parallel 2
# --report /tmp/stress.json --shared-kills 10".
STRESS_ARGS ?=
stress: $(STAMP)
	$(BIN)/python tests/support/crash_harness --corpus all --kills 20 $(STRESS_ARGS)

# SLURM end to end (tests/slurm/run_pipeline.sh): the sample corpus through a throw-away
# single-node slurmctld/slurmd with profiles/slurm, compared byte for byte with a local run.
# Installs slurm-wlm + munge with apt-get when missing and prints "slurm: skipped: <reason>"
# where it cannot; uses its own venv (pinned requirements + the [slurm] extra's plugin) unless
# .venv already has the plugin. See tests/slurm/README.md.
.PHONY: test-slurm
test-slurm:
	bash tests/slurm/run_pipeline.sh
