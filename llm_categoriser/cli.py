"""Command-line interface over the workflow (``python -m llm_categoriser``).

The verbs of the earlier batch tool, on top of the Snakemake workflow in batch mode:

* ``batch-create``: plan the run and submit one job per group of batches (``--until submit``);
* ``batch-list``: the jobs of the data folder and their status, read from the job files;
* ``batch-fetch``: fetch finished jobs and write the documents they carry (``--keep-going``);
* ``batch-cancel``: cancel remote jobs named in the job handles.

Snakemake always runs as a subprocess (``python -m snakemake``); this module never imports it.
Everything reported afterwards is read from the files the workflow wrote under
``<data_dir>/jobs/<job>/`` (``handle.json``, ``results.json``, ``attempts.json``), the plan
(``<data_dir>/plan/plan.json``) and the per-job logs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import llm_categoriser

from .errors import CategoriserError
from .settings import Settings, resolve

DEFAULT_SNAKEFILE = Path(llm_categoriser.__file__).resolve().parent.parent / "Snakefile"
STATUSES = ("pending", "completed", "failed")
EXIT_OK, EXIT_PENDING, EXIT_FAILED = 0, 1, 2
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) (?P<text>.*)$")
_RULE_ERROR = re.compile(r"^Error in rule (?P<rule>\w+):")
_CONFIG_KEY = re.compile(r"[a-zA-Z_][\w-]*\w$")


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


# --------------------------------------------------------------------------
# Workspace: the directory, its settings and the files of its jobs
# --------------------------------------------------------------------------


def parse_config_value(value: str) -> Any:
    """A ``--config`` value as Snakemake reads it (int, float, True/False, YAML, else text)."""
    if value == "":
        return None
    for parser in (int, float):
        try:
            return parser(value)
        except ValueError:
            pass
    if value in ("True", "False"):
        return value == "True"
    try:
        parsed = yaml.load(value, Loader=yaml.BaseLoader)
    except yaml.YAMLError:
        return value
    return value if parsed is None else parsed


def split_config(entries: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not _CONFIG_KEY.match(key.strip()):
            raise CliError(f"--config {entry!r}: expected KEY=VALUE, e.g. --config batch_size=5")
        pairs.append((key.strip(), value))
    return pairs


@dataclass
class Workspace:
    directory: Path
    snakefile: Path
    cores: int
    settings: Settings
    config_entries: list[str]
    verbose: bool = False

    def path(self, relative: str | Path) -> Path:
        """A workflow path (relative to the working directory) as seen from here."""
        return self.directory / relative

    @property
    def data(self) -> str:
        return self.settings.data_dir

    @property
    def jobs_dir(self) -> Path:
        return self.path(self.data) / "jobs"

    def handle_target(self, job: str) -> str:
        return f"{self.data}/jobs/{job}/handle.json"

    def results_target(self, job: str) -> str:
        return f"{self.data}/jobs/{job}/results.json"

    def csv_target(self, subject: str, document: str) -> str:
        return f"{self.settings.documents_dir}/{subject}/document_reports/{document}.csv"


def open_workspace(
    args: argparse.Namespace, extra: Sequence[tuple[str, str]] = (), need_report: bool = True
) -> Workspace:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise CliError(f"directory {directory} does not exist")
    config_file = directory / "config.yaml"
    if not config_file.is_file():
        raise CliError(
            f"{config_file} not found: run this in a folder with the workflow's config.yaml "
            f"(or pass --directory), e.g. a copy of {DEFAULT_SNAKEFILE.parent / 'config.yaml'}"
        )
    snakefile = Path(args.snakefile)
    if not snakefile.is_file():
        raise CliError(f"Snakefile {snakefile} not found (--snakefile)")
    try:
        with open(config_file, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except yaml.YAMLError as exc:
        raise CliError(f"{config_file} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise CliError(f"{config_file} must hold KEY: VALUE settings")
    pairs = split_config(args.config or [])
    if args.provider:
        pairs.append(("provider", args.provider))
    pairs.extend(extra)
    pairs.append(("mode", "batch"))
    for key, value in pairs:
        config[key] = parse_config_value(value)
    try:
        settings = resolve(config)
    except CategoriserError as exc:
        raise CliError(f"{config_file}: {exc}") from None
    if need_report and not (directory / settings.report).is_file():
        raise CliError(
            f"report {directory / settings.report} not found (config key report, or "
            f"<documents_dir>/language-check-report.csv with documents_dir {settings.documents_dir!r})"
        )
    return Workspace(
        directory=directory,
        snakefile=snakefile,
        cores=args.cores,
        settings=settings,
        config_entries=[f"{k}={v}" for k, v in pairs],
        verbose=getattr(args, "verbose", False),
    )


def read_json_file(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None


def mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def ranges(numbers: Iterable[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    values = sorted(set(numbers))
    if not values:
        return "-"
    parts: list[str] = []
    start = prev = values[0]
    for n in [*values[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


@dataclass
class DocPart:
    """The part of one document that a job carries."""

    subject: str
    document: str
    indexes: list[int] = field(default_factory=list)
    issue_keys: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.subject}/{self.document}"


@dataclass
class JobInfo:
    job: str
    handle: dict[str, Any] | None
    handle_mtime: int | None
    results_path: Path
    results_mtime: int | None
    attempts: dict[str, Any] | None
    attempts_mtime: int | None
    parts: list[DocPart]

    @property
    def name(self) -> str:
        if self.handle and self.handle.get("name"):
            return str(self.handle["name"])
        history = (self.attempts or {}).get("history") or []
        return str(history[-1].get("name") or "") if history else ""

    @property
    def provider(self) -> str:
        if self.handle:
            return str(self.handle.get("provider", ""))
        return {"offline": "offline", "batches": "gemini"}.get(self.name.partition("/")[0], "")

    @property
    def state(self) -> str:
        return str((self.handle or {}).get("state", ""))

    @property
    def died(self) -> bool:
        """The last job died and nothing was submitted or fetched since."""
        history = (self.attempts or {}).get("history") or []
        if not history or self.attempts_mtime is None:
            return False
        newer_handle = self.handle_mtime is not None and self.handle_mtime > self.attempts_mtime
        newer_results = self.results_mtime is not None and self.results_mtime > self.attempts_mtime
        return not (newer_handle or newer_results)

    @property
    def status(self) -> str:
        if self.state == "ABANDONED" or self.died:
            return "failed"
        if self.results_mtime is not None and (
            self.handle_mtime is None or self.results_mtime >= self.handle_mtime
        ):
            return "completed"
        return "pending"

    @property
    def failure(self) -> str:
        if self.state == "ABANDONED":
            return str((self.handle or {}).get("error") or "job abandoned")
        history = (self.attempts or {}).get("history") or []
        if history:
            last = history[-1]
            text = f"job {last.get('name') or '?'} ended {last.get('state', '?')}"
            return f"{text} ({last['error']})" if last.get("error") else text
        return ""

    def results_count(self) -> int:
        data = read_json_file(self.results_path) or {}
        return sum(len(b.get("items") or {}) for b in data.get("batches") or [])

    @property
    def issues(self) -> int:
        return sum(len(p.issue_keys) for p in self.parts)


def planned_jobs(ws: Workspace) -> dict[str, list[tuple[str, str, str]]]:
    """The jobs of the last planned selection (``plan.json``), grouped as the workflow does."""
    plan_json = read_json_file(ws.path(ws.data) / "plan" / "plan.json")
    if not plan_json:
        return {}
    from .plan import DocumentPlan, Plan, group_jobs

    documents = [
        DocumentPlan(d["subject"], d["filename"], d["document"], list(d["batch_ids"]), int(d["issues"]))
        for d in plan_json.get("documents", [])
    ]
    return group_jobs(Plan(documents=documents), ws.settings)


def _manifest(ws: Workspace, subject: str, document: str, cache: dict[tuple[str, str], Any]) -> Any:
    if (subject, document) not in cache:
        path = ws.path(ws.data) / "plan" / subject / document / "manifest.json"
        cache[(subject, document)] = read_json_file(path) or {}
    return cache[(subject, document)]


def load_job(
    ws: Workspace,
    job: str,
    plan: dict[str, list[tuple[str, str, str]]],
    manifests: dict[tuple[str, str], Any],
) -> JobInfo:
    folder = ws.jobs_dir / job
    handle_path = folder / "handle.json"
    handle = read_json_file(handle_path)
    attempts_path = folder / "attempts.json"
    parts: dict[tuple[str, str], DocPart] = {}
    if handle and handle.get("batches"):
        for ref in handle["batches"]:
            part = parts.setdefault(
                (ref["subject"], ref["document"]), DocPart(ref["subject"], ref["document"])
            )
            part.indexes.append(int(ref.get("index", 0)))
            part.issue_keys.extend(ref.get("issue_keys") or [])
    else:
        for subject, document, batch in plan.get(job, []):
            part = parts.setdefault((subject, document), DocPart(subject, document))
            manifest = _manifest(ws, subject, document, manifests)
            batches = manifest.get("batches") or []
            if batch in batches:
                part.indexes.append(batches.index(batch))
            part.issue_keys.extend(i["key"] for i in manifest.get("issues", []) if i.get("batch_id") == batch)
    return JobInfo(
        job=job,
        handle=handle,
        handle_mtime=mtime(handle_path) if handle is not None else None,
        results_path=folder / "results.json",
        results_mtime=mtime(folder / "results.json"),
        attempts=read_json_file(attempts_path),
        attempts_mtime=mtime(attempts_path),
        parts=list(parts.values()),
    )


def job_ids_on_disk(ws: Workspace) -> list[str]:
    if not ws.jobs_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in ws.jobs_dir.iterdir()
        if p.is_dir() and any((p / f).exists() for f in ("handle.json", "results.json", "attempts.json"))
    )


def issue_ids(ws: Workspace, part: DocPart, manifests: dict[tuple[str, str], Any]) -> str:
    """The flags of a part as the ``issue_id`` numbers of the document CSV (keys if unknown)."""
    manifest = _manifest(ws, part.subject, part.document, manifests)
    numbers = {i["key"]: int(i["issue_id"]) for i in manifest.get("issues", [])}
    known = [numbers[k] for k in part.issue_keys if k in numbers]
    unknown = [k for k in part.issue_keys if k not in numbers]
    return ",".join(x for x in (ranges(known) if known else "", *unknown) if x)


def resolve_job_names(
    ws: Workspace, names: Sequence[str], plan: dict[str, list[tuple[str, str, str]]]
) -> list[str]:
    """Our job ids, or the remote (``batches/...``) or display names recorded for them."""
    index: dict[str, str] = {job: job for job in plan}
    for job in job_ids_on_disk(ws):
        index[job] = job
        folder = ws.jobs_dir / job
        handle = read_json_file(folder / "handle.json") or {}
        for key in ("name", "display_name"):
            if handle.get(key):
                index.setdefault(str(handle[key]), job)
        for entry in (read_json_file(folder / "attempts.json") or {}).get("history") or []:
            if entry.get("name"):
                index.setdefault(str(entry["name"]), job)
    jobs: list[str] = []
    unknown = [n for n in names if n not in index]
    if unknown:
        known = sorted(set(index.values()))
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        raise CliError(
            f"unknown job name(s): {', '.join(unknown)}. Known jobs: {shown or 'none (run batch-create)'}"
        )
    for name in names:
        if index[name] not in jobs:
            jobs.append(index[name])
    return jobs


# --------------------------------------------------------------------------
# Running Snakemake
# --------------------------------------------------------------------------


@dataclass
class RunResult:
    returncode: int
    output: str
    started: float

    @property
    def failed_rules(self) -> set[str]:
        return {m.group("rule") for line in self.output.splitlines() if (m := _RULE_ERROR.match(line))}

    @property
    def log_file(self) -> str:
        for line in reversed(self.output.splitlines()):
            if line.startswith("Complete log(s): "):
                return line.removeprefix("Complete log(s): ").strip()
        return ""

    def tail(self, lines: int = 25) -> str:
        kept = [line if len(line) <= 300 else line[:297] + "..." for line in self.output.splitlines()]
        return "\n".join(kept[-lines:])


def run_snakemake(ws: Workspace, targets: Sequence[str], *options: str) -> RunResult:
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


def logged_error(log_file: Path, since: float, mentions: Sequence[str]) -> tuple[str, str] | None:
    """(exception type, message) of the ERROR a job logged in this run, if any.

    Prefers a record that names the job (by id or remote name): a log may also hold records
    of a job that ran at the same time.
    """
    try:
        if log_file.stat().st_mtime < since - 1:
            return None
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    records: list[tuple[str, str]] = []
    for n, line in enumerate(lines):
        match = _LOG_RECORD.match(line)
        if not match or match.group("level") != "ERROR":
            continue
        text = [match.group("text")]
        for more in lines[n + 1 :]:
            if _LOG_RECORD.match(more):
                break
            text.append(more)
        kind, _, message = "\n".join(text).partition(": ")
        records.append((kind, message.strip()))
    names = [m for m in mentions if m]
    for kind, message in records:
        if any(name in message for name in names):
            if kind == "PendingJob":  # only the lines of this job
                own = [line for line in message.splitlines() if any(line.startswith(n) for n in names)]
                message = "\n".join(own) or message
            return kind, message
    # PendingJob and DeadJob always name their job: any such record here is another job's
    generic = [r for r in records if r[0] not in ("PendingJob", "DeadJob")]
    return generic[0] if generic else None


# --------------------------------------------------------------------------
# Verbs
# --------------------------------------------------------------------------


def filters(args: argparse.Namespace) -> list[tuple[str, str]]:
    """--subjects/--documents/--batch-size as config entries; every verb takes them, so a fetch
    can be limited to what a create submitted (a fetch of everything plans everything)."""
    extra: list[tuple[str, str]] = []
    if getattr(args, "subjects", None):
        extra.append(("subjects", json.dumps(args.subjects)))
    if getattr(args, "documents", None):
        extra.append(("documents", json.dumps(args.documents)))
    if getattr(args, "batch_size", None) is not None:
        extra.append(("batch_size", str(args.batch_size)))
    return extra


def cmd_batch_create(args: argparse.Namespace) -> int:
    ws = open_workspace(args, filters(args))
    before = {job: mtime(ws.jobs_dir / job / "handle.json") for job in job_ids_on_disk(ws)}
    run = run_snakemake(ws, [], "--until", "submit", "--keep-going")
    if run.returncode != 0 and not run.failed_rules:
        report_run_failure(run, "batch-create")  # the workflow did not start: the plan is not this run's
        return EXIT_FAILED
    plan_json = read_json_file(ws.path(ws.data) / "plan" / "plan.json") or {}
    plan = planned_jobs(ws)
    jobs_of: dict[tuple[str, str], list[str]] = {}
    for job, refs in plan.items():
        for subject, document, _batch in refs:
            jobs = jobs_of.setdefault((subject, document), [])
            if job not in jobs:
                jobs.append(job)
    created, existing, missing = [], [], []
    for job in plan:
        now = mtime(ws.jobs_dir / job / "handle.json")
        if now is None:
            missing.append(job)
        elif before.get(job) != now:
            created.append(job)
        else:
            existing.append(job)
    batches = 0
    for doc in plan_json.get("documents", []):
        jobs = jobs_of.get((doc["subject"], doc["document"]), [])
        batches += len(doc["batch_ids"])
        where = f"job {jobs[0]}" if len(jobs) == 1 else f"jobs {', '.join(jobs)}"
        unsent = [j for j in jobs if j in missing]
        note = f" (not submitted: {', '.join(unsent)})" if unsent else ""
        print(f"{doc['subject']}/{doc['document']}: {len(doc['batch_ids'])} batch(es) in {where}{note}")
    explained = 0
    for job in missing:
        logged = logged_error(ws.path(ws.data) / "logs" / "submit" / f"{job}.log", run.started, [job])
        if logged:
            explained += 1
            print(f"Error: {job}: {logged[0]}: {logged[1]}".replace("\n", "\n  "))
    if run.returncode != 0:
        if run.failed_rules == {"submit"} and explained == len(missing) > 0:
            print(f"Snakemake log: {run.log_file or '(not found)'}", file=sys.stderr)
        else:
            report_run_failure(run, "batch-create")
    for skipped in plan_json.get("skipped_documents", []):
        print(f"Skipped {skipped['document']}: {skipped['reason']}")
    documents = len(plan_json.get("documents", []))
    summary = (
        f"Summary: {documents} document(s), {batches} batch(es), {len(created)} job(s) created, "
        f"{len(existing)} already existing"
    )
    if missing:
        summary += f", {len(missing)} not submitted ({', '.join(missing)})"
    print(summary + ".")
    if documents == 0:
        print("Nothing selected: check the report and the subjects/documents filters.", file=sys.stderr)
    return EXIT_FAILED if run.returncode != 0 or missing else EXIT_OK


def _row(
    info: JobInfo, ws: Workspace, manifests: dict[tuple[str, str], Any], verbose: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "job": info.job,
        "status": info.status,
        "provider": info.provider,
        "name": info.name,
        "state": info.state,
        "created_at": str((info.handle or {}).get("created_at", "")),
        "attempt": int((info.handle or {}).get("attempt") or (info.attempts or {}).get("attempt") or 1),
        "subjects": sorted({p.subject for p in info.parts}),
        "documents": [
            {
                "subject": p.subject,
                "document": p.document,
                "batch_indexes": sorted(set(p.indexes)),
                "issues": len(p.issue_keys),
                **({"issue_ids": issue_ids(ws, p, manifests)} if verbose else {}),
            }
            for p in info.parts
        ],
        "issues": info.issues,
        "results": str(info.results_path) if info.results_mtime is not None else None,
    }
    if info.status == "failed":
        row["error"] = info.failure
    if verbose:
        row["issue_keys"] = [k for p in info.parts for k in p.issue_keys]
    return row


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_batch_list(args: argparse.Namespace) -> int:
    ws = open_workspace(args, need_report=False)
    plan = planned_jobs(ws)
    manifests: dict[tuple[str, str], Any] = {}
    rows = [
        _row(load_job(ws, job, plan, manifests), ws, manifests, args.verbose) for job in job_ids_on_disk(ws)
    ]
    total = len(rows)
    if args.status:
        rows = [r for r in rows if r["status"] == args.status]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        what = f"{args.status} batch jobs" if args.status else "batch jobs"
        print(f"No {what} in {ws.jobs_dir}" + (f" ({total} job(s) with another status)." if total else "."))
        return EXIT_OK
    header = [
        "JOB",
        "STATUS",
        "PROVIDER",
        "REMOTE NAME",
        "CREATED",
        "SUBJECT",
        "DOCUMENT",
        "BATCHES",
        "ISSUES",
    ]
    if args.verbose:
        header.append("ISSUE IDS")
    table: list[list[str]] = []
    for row in rows:
        job_cells = [
            row["job"],
            row["status"],
            row["provider"] or "-",
            row["name"] or "-",
            row["created_at"] or "-",
        ]
        docs = row["documents"] or [{"subject": "-", "document": "-", "batch_indexes": [], "issues": 0}]
        for n, doc in enumerate(docs):
            cells = job_cells if n == 0 else [""] * len(job_cells)
            line = [*cells, doc["subject"], doc["document"], ranges(doc["batch_indexes"]), str(doc["issues"])]
            if args.verbose:
                line.append(doc.get("issue_ids", ""))
            table.append(line)
    print_table(header, table)
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    print(f"\n{len(rows)} job(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".")
    for row in rows:
        if row.get("error"):
            print(f"{row['job']} failed: {row['error']}")
    return EXIT_OK


def cmd_batch_fetch(args: argparse.Namespace) -> int:
    ws = open_workspace(args, filters(args))
    plan_before = planned_jobs(ws)
    selected: list[str] | None = None
    targets = ["all"]
    if args.job_names:
        selected = resolve_job_names(ws, args.job_names, plan_before)
        manifests: dict[tuple[str, str], Any] = {}
        targets = [ws.results_target(job) for job in selected]
        for job in selected:
            for part in load_job(ws, job, plan_before, manifests).parts:
                csv = ws.csv_target(part.subject, part.document)
                if csv not in targets:
                    targets.append(csv)
    before = {job: mtime(ws.jobs_dir / job / "handle.json") for job in job_ids_on_disk(ws)}
    csvs_before = {p: mtime(p) for p in ws.path(ws.settings.documents_dir).glob("*/document_reports/*.csv")}
    results_before = {job: mtime(ws.jobs_dir / job / "results.json") for job in before}
    run = run_snakemake(ws, targets, "--keep-going")
    plan = planned_jobs(ws)
    jobs = selected if selected is not None else (list(plan) or job_ids_on_disk(ws))
    manifests = {}
    infos = [load_job(ws, job, plan, manifests) for job in jobs]
    other_rules = run.failed_rules - {"fetch"}
    errors: list[str] = []
    if run.returncode != 0 and (not run.failed_rules or other_rules):
        report_run_failure(run, "batch-fetch")
        if other_rules:
            errors.append(f"rule(s) {', '.join(sorted(other_rules))} failed")
        else:
            errors.append("the workflow did not run")
    counts = dict.fromkeys(STATUSES, 0)
    for info in infos:
        status = info.status
        log_file = ws.path(ws.data) / "logs" / "fetch" / f"{info.job}.log"
        logged = logged_error(log_file, run.started, [info.name, f"{info.job}:"])
        if status == "completed":
            when = " (earlier run)" if results_before.get(info.job) == info.results_mtime else ""
            print(f"Saved {info.results_count()} result(s) to {info.results_path}{when}")
        elif status == "failed":
            message = logged[1] if logged and logged[0] == "DeadJob" else f"{info.job}: {info.failure}"
            if info.results_mtime is not None and info.state == "ABANDONED":
                message += f"; its {info.results_count()} flag(s) are marked failed in {info.results_path}"
            print("Failed: " + message.replace("\n", "\n  "))
        elif logged and logged[0] not in ("PendingJob", "DeadJob"):
            print(f"Error: {info.job}: {logged[0]}: {logged[1]}".replace("\n", "\n  "))
            errors.append(f"{info.job} could not be fetched")
        elif logged and logged[0] == "PendingJob":
            for line in logged[1].splitlines():
                print(f"Pending: {line}")
        else:
            print(f"Pending: {info.job} {info.name or '(not submitted)'}: not fetched in this run")
        counts[status] += 1
    submitted = [i.job for i in infos if i.handle_mtime is not None and before.get(i.job) != i.handle_mtime]
    if submitted:
        print(
            f"Submitted {len(submitted)} job(s) in this run: {', '.join(submitted)} "
            f"(not submitted before, or resubmitted because their batches changed or the job died)"
        )
    written = [
        p
        for p in ws.path(ws.settings.documents_dir).glob("*/document_reports/*.csv")
        if csvs_before.get(p) != mtime(p)
    ]
    if written:
        print(f"Wrote {len(written)} document CSV(s) under {ws.path(ws.settings.documents_dir)}")
    print(
        f"Checked {len(infos)} job(s): {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['pending']} still pending."
    )
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors or counts["failed"]:
        return EXIT_FAILED
    return EXIT_PENDING if counts["pending"] else EXIT_OK


def cmd_batch_cancel(args: argparse.Namespace) -> int:
    ws = open_workspace(args, need_report=False)
    plan = planned_jobs(ws)
    manifests: dict[tuple[str, str], Any] = {}
    if args.all:
        infos = [load_job(ws, job, plan, manifests) for job in job_ids_on_disk(ws)]
        infos = [i for i in infos if i.status == "pending" and i.handle is not None]
    else:
        infos = [load_job(ws, job, plan, manifests) for job in resolve_job_names(ws, args.job_names, plan)]
    if not infos:
        print(f"No pending batch jobs to cancel in {ws.jobs_dir}.")
        return EXIT_OK
    from .providers.batch import BatchBackend, make_backend

    backends: dict[str, BatchBackend] = {}
    failed = cancelled_remote = 0
    for info in infos:
        label = f"{info.job} ({info.name})" if info.name else info.job
        if info.handle is None:
            print(f"{label}: no job handle; nothing to cancel")
            continue
        if not info.handle.get("name"):
            print(f"{label}: no remote job (state {info.state}); nothing to cancel")
            continue
        if info.status == "completed":
            print(f"{label}: already fetched ({info.results_path}); not cancelled")
            continue
        try:
            if info.provider not in backends:
                backends[info.provider] = make_backend(
                    ws.settings.model_copy(update={"provider": info.provider})
                )
            backends[info.provider].cancel(str(info.handle["name"]))
        except Exception as exc:  # one job's failure must not stop the others
            failed += 1
            print(f"{label}: could not cancel: {type(exc).__name__}: {exc}")
            continue
        if info.provider == "offline":
            print(f"{label}: cancelled (offline job: nothing runs remotely, the next fetch still answers it)")
        else:
            cancelled_remote += 1
            print(f"{label}: cancellation requested")
    if cancelled_remote:
        print(
            f"The next batch-fetch records the cancelled job(s) as dead; a later run resubmits them "
            f"(up to max_job_attempts = {ws.settings.max_job_attempts})."
        )
    return EXIT_FAILED if failed else EXIT_OK


# --------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("workflow options")
    group.add_argument(
        "--directory",
        default=".",
        metavar="DIR",
        help="working directory with config.yaml and the documents (default: .)",
    )
    group.add_argument(
        "--snakefile",
        default=str(DEFAULT_SNAKEFILE),
        metavar="FILE",
        help="the workflow (default: %(default)s)",
    )
    group.add_argument("--cores", type=int, default=2, metavar="N", help="Snakemake cores (default: 2)")
    group.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="settings passed to Snakemake's --config (mode=batch is always added)",
    )
    group.add_argument("--provider", choices=["offline", "gemini"], help="the model provider")
    group.add_argument("--subjects", nargs="+", metavar="SUBJECT", help="only these subjects")
    group.add_argument("--documents", nargs="+", metavar="DOCUMENT", help="only these documents")
    group.add_argument("--batch-size", type=int, metavar="N", help="flags per batch (1-100)")

    parser = argparse.ArgumentParser(
        prog="llm_categoriser",
        description="Categorise LanguageTool flags with an LLM in batch mode, over the Snakemake workflow.",
    )
    verbs = parser.add_subparsers(dest="command", metavar="VERB")

    create = verbs.add_parser(
        "batch-create",
        parents=[common],
        help="plan the run and submit its batch jobs",
        description="Plan the run and submit one batch job per group of batches (snakemake --until submit).",
    )
    create.add_argument("--verbose", action="store_true", help="show Snakemake's output")
    create.set_defaults(handler=cmd_batch_create)

    listing = verbs.add_parser(
        "batch-list",
        parents=[common],
        help="list the batch jobs and their status",
        description="List the batch jobs of the data folder (its jobs/*/ files) and their status.",
    )
    listing.add_argument("--status", choices=STATUSES, help="only jobs with this status")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--verbose", action="store_true", help="also list the issue ids of each document")
    listing.set_defaults(handler=cmd_batch_list)

    fetch = verbs.add_parser(
        "batch-fetch",
        parents=[common],
        help="fetch finished jobs and write their documents",
        description=(
            "Fetch finished batch jobs and write the documents they carry (snakemake --keep-going). "
            "Exit code 0: nothing pending or failed; 1: some jobs are still pending; 2: failures."
        ),
    )
    which = fetch.add_mutually_exclusive_group()
    which.add_argument(
        "--check-all-pending",
        action="store_true",
        help="check every job and complete the whole run (the default)",
    )
    which.add_argument(
        "--job-names", nargs="+", metavar="NAME", help="only these jobs (job ids or remote batches/... names)"
    )
    fetch.add_argument("--verbose", action="store_true", help="show Snakemake's output")
    fetch.set_defaults(handler=cmd_batch_fetch)

    cancel = verbs.add_parser(
        "batch-cancel",
        parents=[common],
        help="cancel remote batch jobs",
        description="Cancel the remote jobs named in the job handles.",
    )
    target = cancel.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--job-names", nargs="+", metavar="NAME", help="these jobs (job ids or remote batches/... names)"
    )
    target.add_argument("--all", action="store_true", help="every job that is still pending")
    cancel.set_defaults(handler=cmd_batch_cancel)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_FAILED
    if getattr(args, "batch_size", None) is not None and not 1 <= args.batch_size <= 100:
        parser.error("--batch-size must be a whole number from 1 to 100")
    try:
        return int(args.handler(args))
    except (CliError, CategoriserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
