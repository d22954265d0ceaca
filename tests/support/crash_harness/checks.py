"""What the crash harness checks and plans: process groups, Snakemake logs, the final outputs
(CSV shape, partial or leftover files), and the seeded kill moments and events."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from support.crash_harness.records import (
    COMBINED_HEADER,
    DOCUMENT_HEADER,
    TMP_NAME,
    Baseline,
    Invocation,
    Mode,
)


def kill_group(pgid: int) -> None:
    """SIGKILL the whole process group and wait until none of its processes runs any more."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.02)


def group_alive(pgid: int) -> bool:
    """Whether a non-zombie process of the group still exists (zombies cannot write files)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def classify(rc: int | None, text: str, mode: Mode) -> str:
    if rc == 0:
        return "ok"
    if "LockException" in text or "Directory cannot be locked" in text:
        return "locked"
    if mode.batch:
        failed_rules = set(re.findall(r"^Error in rule (\w+):", text, flags=re.M))
        exceptions = set(re.findall(r"^(\w+) in file \"", text, flags=re.M))
        if failed_rules == {"fetch"} and exceptions == {"PendingJob"}:
            return "pending"
    return "failed"


def jobs_in_flight(log: Path) -> dict[str, int]:
    """The rules of the jobs a killed run had started and not finished, from its output."""
    started: dict[str, str] = {}
    rule = ""
    ended_next = False
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line):
            rule, ended_next = match.group(1), False
        elif match := re.match(r"^Error in rule (\w+):", line):
            ended_next = True
        elif match := re.match(r"^\s+jobid: (\d+)", line):
            if ended_next:
                started.pop(match.group(1), None)
                ended_next = False
            else:
                started[match.group(1)] = rule
        elif match := re.search(r"Finished jobid: (\d+)", line):
            started.pop(match.group(1), None)
    return dict(Counter(started.values()))


def job_progress(log: Path) -> tuple[int, int] | None:
    """(jobs finished, jobs planned) of a run, from its output; None before its DAG was built."""
    text = log.read_text(encoding="utf-8", errors="replace")
    planned = re.findall(r"^total\s+(\d+)\s*$", text, flags=re.M)
    if not planned:
        return None
    done = re.findall(r"^(\d+) of (\d+) steps", text, flags=re.M)
    return (int(done[-1][0]) if done else 0), int(planned[0])


def phase_of(inv: Invocation, in_flight: dict[str, int]) -> str:
    if inv.startup is None:
        return "startup"
    if in_flight:
        return "+".join(sorted(in_flight))
    text = Path(inv.log).read_text(encoding="utf-8", errors="replace")
    return "idle" if "Finished jobid" in text else "scheduling"


def last_error(tail: str) -> str:
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if re.match(r"^\w+(Error|Exception)\b", line) or " in file " in line:
            return " | ".join(lines[i : i + 3])[:400]
    return " | ".join(lines[-3:])[:400]


def final_outputs(work: Path) -> dict[str, str]:
    docs = work / "Documents"
    files = sorted(docs.glob("*/document_reports/*.csv"))
    combined = docs / "combined-report.csv"
    if combined.exists():
        files.append(combined)
    return {str(p.relative_to(work)): p.read_text(encoding="utf-8") for p in files}


def read_json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


RUN_TIME_KEYS = ("started_at", "finished_at", "duration_seconds")  # differ between runs by nature
# What the runs sent and spent differs by design after a kill: the resumed run takes from the
# answer cache what the killed one had received (reused, not sent), so only the rest is compared.
SPEND_KEYS = ("spend", "this_run")


def read_summary(work: Path) -> Any:
    summary = read_json_or_none(work / "Documents" / "run-summary.json")
    if isinstance(summary, dict):
        for key in (*RUN_TIME_KEYS, *SPEND_KEYS):
            summary.pop(key, None)
    return summary


def planned_issues(work: Path) -> int:
    plan = json.loads((work / "data" / "plan" / "plan.json").read_text(encoding="utf-8"))
    return sum(int(d["flags"]) for d in plan["documents"])


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def first_difference(expected: str, actual: str) -> str:
    a, b = expected.splitlines(), actual.splitlines()
    for n, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return f"line {n}: expected {x[:120]!r}, got {y[:120]!r}"
    return f"{len(a)} line(s) expected, {len(b)} found"


def check_csv(path: Path, text: str) -> str | None:
    if not text:
        return "empty CSV"
    if not text.endswith("\n"):
        return "CSV does not end with a newline (truncated?)"
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        return f"CSV does not parse: {exc}"
    if not rows or not rows[0]:
        return "CSV has no header"
    width = len(rows[0])
    bad = [n for n, row in enumerate(rows[1:], start=2) if len(row) != width]
    if bad:
        return f"rows {bad[:5]} do not have the header's {width} column(s)"
    if path.parent.name == "document_reports" and rows[0] != DOCUMENT_HEADER:
        return f"unexpected header {rows[0][:4]}..."
    if path.name == "combined-report.csv" and rows[0] != COMBINED_HEADER:
        return f"unexpected header {rows[0][:4]}..."
    return None


def scan_files(work: Path, expected: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Problems with the visible .csv/.json files under Documents/ and data/, and the temp files.

    Every visible JSON must load and every CSV must parse completely with its header; a final
    CSV that exists must already be the uninterrupted run's (merge writes it only once all its
    results exist, so anything else is a partial or stale file).
    """
    problems: list[str] = []
    temps: list[str] = []
    for top in ("Documents", "data"):
        for path in sorted((work / top).rglob("*")):
            if not path.is_file():
                continue
            rel = str(path.relative_to(work))
            if TMP_NAME.match(path.name):
                temps.append(rel)
                continue
            if path.suffix not in (".csv", ".json"):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{rel}: unreadable ({exc})")
                continue
            if path.suffix == ".json":
                try:
                    json.loads(text)
                except ValueError as exc:
                    problems.append(f"{rel}: JSON does not load ({exc}; {len(text)} bytes)")
                continue
            issue = check_csv(path, text)
            if issue:
                problems.append(f"{rel}: {issue}")
            elif expected is not None and rel in expected and text != expected[rel]:
                problems.append(
                    f"{rel}: complete but not the uninterrupted run's content "
                    f"({first_difference(expected[rel], text)})"
                )
    return problems, temps


def kill_plan(rng: random.Random, count: int, per_trial: int) -> list[list[float]]:
    """``count`` fractions stratified over ``[0, 1)`` (one per slice), shuffled into trials.

    Within a trial they are in increasing order: a run that ends before its kill ends the trial,
    so the largest share of the remaining time comes last.
    """
    fractions = [(i + rng.random()) / count for i in range(count)]
    rng.shuffle(fractions)
    return [sorted(fractions[g : g + per_trial]) for g in range(0, count, per_trial)]


def event_plan(rng: random.Random, count: int, base: Baseline) -> list[str]:
    """``count`` kill events: a seeded n-th answer of the calls that matter, lost with the run.

    Sync: a generateContent answer. Batch: alternately a batch creation (the job exists but the
    run never learns its name: the rerun must adopt it, not create another) and a status poll.
    """
    calls = base.endpoint_counts
    if base.mode == "sync":
        choices = [("models.generateContent", calls.get("models.generateContent", 0))]
    elif base.mode == "batch":
        choices = [
            ("models.batchGenerateContent", calls.get("models.batchGenerateContent", 0)),
            ("batches.get", calls.get("batches.get", 0)),
        ]
    else:
        return []
    wanted = Counter(choices[i % len(choices)] for i in range(count))
    events = []
    for (endpoint, total), k in wanted.items():
        picks = rng.sample(range(1, total + 1), min(k, total)) if total else []  # distinct calls
        events += [f"{endpoint}#{n}" for n in sorted(picks)]
    return events
