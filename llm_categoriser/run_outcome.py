"""How a run that did not complete ended: pending remote jobs, or a failure (docs/DESIGN.md §23).

Snakemake ends every run in which a job failed with exit status 1, and a fetch that finds its
remote job still running is such a job. The workflow's ``onerror`` handler (and the
command-line interface) read the remote-job states the fetch rule wrote in this run: when
every failed job is a fetch of a job that is still pending, the run is *pending*, not failed.
It ends with a short block (job, documents, remote state, age) and exit status 75
(``EX_TEMPFAIL`` of sysexits.h: "try again later"); any other failure keeps status 1.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .layout import Layout
from .records import RecordError, RemoteJobState, read_record

EXIT_OK, EXIT_FAILED, EXIT_PENDING = 0, 1, 75
_RULE_ERROR = re.compile(r"^Error in rule (?P<rule>\w+):")
_OUTPUT = re.compile(r"^\s+output: (?P<paths>.+)$")
_PROVIDER_ERROR = re.compile(r"^ProviderError in file [^\n]*:\n(?P<message>[^\n]+)$", re.MULTILINE)


@dataclass
class FailedJob:
    rule: str
    outputs: list[str] = field(default_factory=list)


def failed_jobs(log_text: str) -> list[FailedJob]:
    """The jobs Snakemake reported as failed (``Error in rule X:`` and its ``output:`` line)."""
    found: list[FailedJob] = []
    for line in log_text.splitlines():
        if match := _RULE_ERROR.match(line):
            found.append(FailedJob(match.group("rule")))
        elif found and not found[-1].outputs and (match := _OUTPUT.match(line)):
            found[-1].outputs = [p.strip() for p in match.group("paths").split(",")]
    return found


def pending_states(layout: Layout, since: float) -> dict[str, RemoteJobState]:
    """The remote jobs a fetch found still pending in this run (states written since ``since``)."""
    states: dict[str, RemoteJobState] = {}
    for path in sorted(glob.glob(layout.job_states_glob)):
        try:
            state = read_record(path, RemoteJobState)
        except (OSError, RecordError):
            continue
        if state.status == "pending" and state.checked_at >= since:
            states[state.job] = state
    return states


def pending_block(states: dict[str, RemoteJobState]) -> list[str]:
    lines = [f"Pending batch jobs ({len(states)}), not failed: rerun the same command later to fetch them."]
    for state in states.values():
        lines += [f"  {line}" for line in state.message.splitlines()]
    return lines


def provider_errors(log_text: str) -> list[str]:
    """The messages of the provider errors that stopped jobs (an invalid key, an unknown model),
    once each: Snakemake shows each job's with frames of traceback, the run ends with them plain."""
    found = (m.group("message").strip() for m in _PROVIDER_ERROR.finditer(log_text))
    return [f"error: {message}" for message in dict.fromkeys(found)]


def classify(layout: Layout, log_text: str, since: float) -> tuple[int, list[str]]:
    """(exit status, lines to print) of a run in which some job failed."""
    failed = failed_jobs(log_text)
    states = pending_states(layout, since)
    if not states:
        return EXIT_FAILED, provider_errors(log_text)
    pending_outputs = {layout.job_results(job) for job in states}
    only_pending = bool(failed) and all(
        job.rule == "fetch" and set(job.outputs) <= pending_outputs for job in failed
    )
    lines = pending_block(states)
    if not only_pending:
        lines.append("Other jobs failed too: see the errors above.")
        return EXIT_FAILED, lines + provider_errors(log_text)
    return EXIT_PENDING, lines


def end_of_failed_run(layout: Layout, log_files: str | Sequence[str], since: float) -> None:
    """The workflow's ``onerror``: print the pending block; exit 75 when only fetches are pending.

    ``log_files`` is what Snakemake passes as ``log`` (one path, or a list of them).
    """
    text = ""
    for log_file in [log_files] if isinstance(log_files, str) else log_files:
        try:
            text += Path(log_file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    status, lines = classify(layout, text, since)
    if lines:
        print("\n".join(lines))
    if status == EXIT_PENDING:
        raise SystemExit(EXIT_PENDING)
