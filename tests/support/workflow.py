"""Run the real workflow in a temporary folder and read what it did."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV_SETTINGS = {"LLM_PRIMARY", "LLM_CATEGORISER_BATCH_SIZE", "GEMINI_API_KEY", "GOOGLE_API_KEY"}
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(
    workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    cmd = [
        *SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]
    full_env = {k: v for k, v in os.environ.items() if k not in ENV_SETTINGS}
    full_env.update(env or {})
    if not (workdir / "config.yaml").exists():
        shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run: {rule: count}; empty when nothing is to be done."""
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
    return counts


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def answer_times(work: Path) -> dict[Path, int]:
    """Modification time of every cached batch answer: a new or changed one was (re-)sent."""
    return {p: p.stat().st_mtime_ns for p in (work / "data" / "cache").rglob("*.json")}


def parts_of(work: Path, subject: str, filename: str) -> int:
    """How many categorise jobs (parts) the plan gives a document."""
    import json

    stem = filename.removesuffix(".md")
    manifest = work / "data" / "plan" / subject / stem / "manifest.json"
    return len(json.loads(manifest.read_text(encoding="utf-8"))["parts"])


def resent(before: dict[Path, int], after: dict[Path, int]) -> list[str]:
    """The answers written since ``before``: the batches sent to the provider again."""
    return sorted(p.name for p, t in after.items() if before.get(p) != t)
