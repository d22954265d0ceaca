"""Run the workflow as a subprocess (``python -m snakemake``); this package never imports Snakemake."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .workspace import Workspace


@dataclass
class RunResult:
    returncode: int
    output: str
    started: float

    def tail(self, lines: int = 25) -> str:
        kept = [line if len(line) <= 300 else line[:297] + "..." for line in self.output.splitlines()]
        return "\n".join(kept[-lines:])


def run_snakemake(ws: Workspace, targets: Sequence[str], *options: str) -> RunResult:
    """Run the workflow on ``targets`` with ``options``; its output is shown with ``--verbose``."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        *targets,
        "--snakefile",
        str(ws.snakefile.resolve()),
        "--directory",
        str(ws.directory.resolve()),
        "--cores",
        str(ws.cores),
        *options,
        "--config",
        *ws.config_entries,
    ]
    started = time.time()
    collected: list[str] = []
    with subprocess.Popen(
        cmd,
        cwd=ws.directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                collected.append(line)
                if ws.verbose:
                    sys.stderr.write(line)
        except KeyboardInterrupt:
            proc.wait()
            raise
        returncode = proc.wait()
    return RunResult(returncode, "".join(collected), started)


def report_run_failure(run: RunResult, what: str) -> None:
    print(f"Snakemake {what} failed (exit code {run.returncode}); its last messages:", file=sys.stderr)
    print(run.tail(), file=sys.stderr)
