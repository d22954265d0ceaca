"""Run the real workflow in a folder and read what it did: the one runner of tests and benchmarks."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from llm_categoriser.layout import CONFIG_FILE, SNAKEFILE
from llm_categoriser.providers import PROVIDERS
from llm_categoriser.settings import Settings, resolve

REPO = SNAKEFILE.parent
# Environment variables that would change a run's settings or reach a real service.
ENV_SETTINGS = {"LLM_PRIMARY", "LLM_FALLBACK", "LLM_CATEGORISER_BATCH_SIZE", "OPENAI_BASE_URL"} | {
    name for spec in PROVIDERS.values() for name in spec.key_variables
}
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def default_settings() -> Settings:
    """The settings of a work folder with the repository's config.yaml."""
    return resolve({}, env={})


def snakemake_command(
    workdir: Path, *args: str, cores: int = 2, entry: Sequence[str] = tuple(SNAKEMAKE)
) -> list[str]:
    """The command that runs the workflow in ``workdir`` (``entry``: how Snakemake is started)."""
    return [*entry, "--snakefile", str(SNAKEFILE), "--directory", str(workdir), "--cores", str(cores), *args]


def clean_env(extra: dict[str, str] | None = None, drop: set[str] = ENV_SETTINGS) -> dict[str, str]:
    """This process's environment without ``drop``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra or {})
    return env


def prepare(workdir: Path) -> None:
    """Give ``workdir`` the repository's config.yaml unless it has one."""
    if not (workdir / CONFIG_FILE).exists():
        shutil.copy(REPO / CONFIG_FILE, workdir / CONFIG_FILE)


def snakemake(
    workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    prepare(workdir)
    proc = subprocess.run(
        snakemake_command(workdir, *args),
        capture_output=True,
        text=True,
        env=clean_env(env),
        timeout=timeout,
        cwd=workdir,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def job_counts(output: str) -> dict[str, int]:
    """The first 'Job stats' table of a (dry) run: {rule: count}; empty when nothing is to be done."""
    counts: dict[str, int] = {}
    in_table = False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if match:
                if match.group(1) != "total":
                    counts[match.group(1)] = int(match.group(2))
            elif line.strip() and not line.startswith("---"):
                in_table = False
                if counts:
                    break
    return counts


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def answer_times(work: Path) -> dict[Path, int]:
    """Modification time of every cached batch answer: a new or changed one was (re-)sent."""
    return {p: p.stat().st_mtime_ns for p in (work / default_settings().layout.cache_dir).rglob("*.json")}


def resent(before: dict[Path, int], after: dict[Path, int]) -> list[str]:
    """The answers written since ``before``: the batches sent to the provider again."""
    return sorted(p.name for p, t in after.items() if before.get(p) != t)


def planned_batches(work: Path) -> int:
    """How many batches (one request each, when every answer is valid) the plan holds."""
    from llm_categoriser.records import PlannedBatches, read_record

    files = (work / "data" / "plan").glob("*/*/batches.json")
    return sum(len(read_record(path, PlannedBatches).batches) for path in files)


def merges_reading_the_job_of(work: Path, issue_suffix: str) -> int:
    """How many merge jobs read the result of the plan's job holding the flag whose issue ends
    ``issue_suffix`` (they rerun when that job does), from the merge records of the last run."""
    from llm_categoriser.records import JobSpec, MergedJob, PlannedBatches, read_record

    layout = default_settings().layout
    batch_of = None
    for path in (work / layout.plan_dir).glob("*/*/" + layout.file_name("batches")):
        for batch in read_record(path, PlannedBatches).batches:
            if any(flag.issue.endswith(issue_suffix) for flag in batch.flags):
                batch_of = (batch.subject, batch.document, batch.batch_id)
    for path in (work / layout.job_specs_dir).glob("*.json"):
        spec = read_record(path, JobSpec)
        if batch_of in {tuple(ref) for ref in spec.batches}:
            result = layout.job_result(spec.job)
            records = [read_record(p, MergedJob) for p in (work / layout.data / "merge").glob("*.json")]
            return sum(any(result in doc.results for doc in r.documents) for r in records)
    raise AssertionError(f"no job holds a flag ending {issue_suffix!r}")
