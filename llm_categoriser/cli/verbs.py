"""The verbs of the earlier batch tool, on top of the Snakemake workflow in batch mode.

* ``batch-create``: plan the run and submit one remote job per group of batches (``--until submit``);
* ``batch-list``: the remote jobs of the data folder and their status, read from their records;
* ``batch-fetch``: fetch finished jobs and write the documents they carry (``--keep-going``);
* ``batch-cancel``: cancel the remote jobs named in the job handles.

Everything reported after a run is read from the typed records the rules wrote
(``cli/job_records.py``), with the job grouping of the plan's job specs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any

from ..providers import get_provider
from ..records import PlanSummary, RemoteJobState
from .job_records import STATUSES, JobInfo, JobRecords, read_optional
from .present import job_row, print_table, table_lines
from .snakemake_run import RunResult, report_run_failure, run_snakemake
from .workspace import Workspace, open_workspace

EXIT_OK, EXIT_PENDING, EXIT_FAILED = 0, 1, 2


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


def this_run(state: RemoteJobState | None, run: RunResult) -> RemoteJobState | None:
    """``state`` if this run wrote it."""
    return state if state is not None and state.checked_at >= run.started else None


def identities(records: JobRecords, jobs: list[str]) -> dict[str, Any]:
    return {job: records.load(job).identity for job in jobs}


def plan_summary(ws: Workspace) -> PlanSummary | None:
    return read_optional(ws.path(ws.layout.plan_summary), PlanSummary)


def cmd_batch_create(args: argparse.Namespace) -> int:
    ws = open_workspace(args, filters(args))
    before = identities(JobRecords(ws), JobRecords(ws).on_disk())
    run = run_snakemake(ws, [], "--until", "submit", "--keep-going")
    records = JobRecords(ws)
    infos = [records.load(job) for job in records.specs]
    errors = {i.job: state for i in infos if (state := this_run(i.state, run)) and state.status == "error"}
    if run.returncode != 0 and not errors:
        report_run_failure(run, "batch-create")  # the workflow did not start: the plan is not this run's
        return EXIT_FAILED
    summary = plan_summary(ws)
    jobs_of: dict[tuple[str, str], list[str]] = {}
    for job, refs in records.specs.items():
        for subject, document, _batch in refs:
            jobs = jobs_of.setdefault((subject, document), [])
            if job not in jobs:
                jobs.append(job)
    created, existing, missing = [], [], []
    for info in infos:
        if info.handle is None:
            missing.append(info.job)
        elif before.get(info.job) != info.identity:
            created.append(info.job)
        else:
            existing.append(info.job)
    documents = summary.documents if summary else []
    batches = 0
    for doc in documents:
        jobs = jobs_of.get((doc.subject, doc.document), [])
        batches += len(doc.batch_ids)
        where = f"job {jobs[0]}" if len(jobs) == 1 else f"jobs {', '.join(jobs)}"
        unsent = [j for j in jobs if j in missing]
        note = f" (not submitted: {', '.join(unsent)})" if unsent else ""
        print(f"{doc.subject}/{doc.document}: {len(doc.batch_ids)} batch(es) in {where}{note}")
    for job in missing:
        if job in errors:
            print(f"Error: {job}: {errors[job].error_type}: {errors[job].message}".replace("\n", "\n  "))
    if run.returncode != 0:
        if set(errors) == set(missing):
            logs = ", ".join(ws.layout.log("submit", job=job) for job in missing)
            print(f"Job log(s): {logs}", file=sys.stderr)
        else:
            report_run_failure(run, "batch-create")
    for skipped in summary.skipped_documents if summary else []:
        print(f"Skipped {skipped.document}: {skipped.reason}")
    line = (
        f"Summary: {len(documents)} document(s), {batches} batch(es), {len(created)} job(s) created, "
        f"{len(existing)} already existing"
    )
    if missing:
        line += f", {len(missing)} not submitted ({', '.join(missing)})"
    print(line + ".")
    if not documents:
        print("Nothing selected: check the report and the subjects/documents filters.", file=sys.stderr)
    return EXIT_FAILED if run.returncode != 0 or missing else EXIT_OK


def cmd_batch_list(args: argparse.Namespace) -> int:
    ws = open_workspace(args, need_report=False)
    records = JobRecords(ws)
    rows = [job_row(records.load(job), records, args.verbose) for job in records.on_disk()]
    total = len(rows)
    if args.status:
        rows = [r for r in rows if r["status"] == args.status]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    folder = ws.path(ws.layout.remote_jobs_dir)
    if not rows:
        what = f"{args.status} batch jobs" if args.status else "batch jobs"
        print(f"No {what} in {folder}" + (f" ({total} job(s) with another status)." if total else "."))
        return EXIT_OK
    print_table(*table_lines(rows, args.verbose))
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    print(f"\n{len(rows)} job(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".")
    for row in rows:
        if row.get("error"):
            print(f"{row['job']} failed: {row['error']}")
    return EXIT_OK


def fetch_line(info: JobInfo, run: RunResult) -> tuple[str, str | None]:
    """What ``batch-fetch`` says about one job, and the error it adds (if any)."""
    state = this_run(info.current_state, run)
    if info.status == "completed":
        when = "" if state and state.status == "completed" else " (earlier run)"
        return f"Saved {info.results_count()} result(s) to {info.results_path}{when}", None
    if info.status == "failed":
        message = state.message if state and state.status == "dead" else f"{info.job}: {info.failure}"
        if info.results is not None and info.remote_state == "ABANDONED":
            message += f"; its {info.results_count()} flag(s) are marked failed in {info.results_path}"
        return "Failed: " + message.replace("\n", "\n  "), None
    if state and state.status == "error":
        text = f"Error: {info.job}: {state.error_type}: {state.message}".replace("\n", "\n  ")
        return text, f"{info.job} could not be fetched"
    if state and state.status == "pending":
        return "\n".join(f"Pending: {line}" for line in state.message.splitlines()), None
    return f"Pending: {info.job} {info.name or '(not submitted)'}: not fetched in this run", None


def cmd_batch_fetch(args: argparse.Namespace) -> int:
    ws = open_workspace(args, filters(args))
    records = JobRecords(ws)
    selected: list[str] | None = None
    targets = ["all"]
    if args.job_names:
        selected = records.resolve_names(args.job_names)
        targets = [ws.layout.job_results(job) for job in selected]
        for job in selected:
            for share in records.load(job).shares:
                csv = ws.layout.document_csv(share.subject, share.document)
                if csv not in targets:
                    targets.append(csv)
    before = identities(records, records.on_disk())
    csvs = str(ws.path(ws.layout.document_csvs_glob))
    csvs_before = {p: os.stat(p).st_mtime_ns for p in glob.glob(csvs)}
    run = run_snakemake(ws, targets, "--keep-going")
    records = JobRecords(ws)
    jobs = selected if selected is not None else (list(records.specs) or records.on_disk())
    infos = [records.load(job) for job in jobs]
    errors: list[str] = []
    counts = dict.fromkeys(STATUSES, 0)
    for info in infos:
        text, error = fetch_line(info, run)
        print(text)
        if error:
            errors.append(error)
        counts[info.status] += 1
    if run.returncode != 0:
        # A failure is explained when a job recorded it (pending, dead, error) in this run and
        # every fetched job's documents were written; otherwise another rule failed.
        explained = any(
            (state := this_run(i.current_state, run)) and state.status != "completed" for i in infos
        )
        unwritten = [
            share
            for i in infos
            if i.status == "completed"
            for share in i.shares
            if not ws.path(ws.layout.document_csv(share.subject, share.document)).exists()
        ]
        if not explained or unwritten:
            report_run_failure(run, "batch-fetch")
            errors.append("the workflow failed" if explained or infos else "the workflow did not run")
    submitted = [i.job for i in infos if i.handle is not None and before.get(i.job) != i.identity]
    if submitted:
        print(
            f"Submitted {len(submitted)} job(s) in this run: {', '.join(submitted)} "
            f"(not submitted before, or resubmitted because their batches changed or the job died)"
        )
    written = [p for p in glob.glob(csvs) if csvs_before.get(p) != os.stat(p).st_mtime_ns]
    if written:
        print(f"Wrote {len(written)} document CSV(s) under {ws.path(ws.layout.docs)}")
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
    records = JobRecords(ws)
    if args.all:
        infos = [records.load(job) for job in records.on_disk()]
        infos = [i for i in infos if i.status == "pending" and i.handle is not None]
    else:
        infos = [records.load(job) for job in records.resolve_names(args.job_names)]
    if not infos:
        print(f"No pending batch jobs to cancel in {ws.path(ws.layout.remote_jobs_dir)}.")
        return EXIT_OK
    backends: dict[str, Any] = {}
    failed = cancelled_remote = 0
    for info in infos:
        label = f"{info.job} ({info.name})" if info.name else info.job
        if info.handle is None:
            print(f"{label}: no job handle; nothing to cancel")
            continue
        if not info.handle.name:
            print(f"{label}: no remote job (state {info.remote_state}); nothing to cancel")
            continue
        if info.status == "completed":
            print(f"{label}: already fetched ({info.results_path}); not cancelled")
            continue
        spec = get_provider(info.provider)
        try:
            if info.provider not in backends:
                backends[info.provider] = spec.make_batch_backend(
                    ws.settings.model_copy(update={"provider": info.provider})
                )
            backends[info.provider].cancel(info.handle.name)
        except Exception as exc:  # one job's failure must not stop the others
            failed += 1
            print(f"{label}: could not cancel: {type(exc).__name__}: {exc}")
            continue
        if not spec.runs_remotely:
            note = "nothing runs remotely, the next fetch still answers it"
            print(f"{label}: cancelled ({spec.name} job: {note})")
        else:
            cancelled_remote += 1
            print(f"{label}: cancellation requested")
    if cancelled_remote:
        print(
            f"The next batch-fetch records the cancelled job(s) as dead; a later run resubmits them "
            f"(up to max_job_attempts = {ws.settings.max_job_attempts})."
        )
    return EXIT_FAILED if failed else EXIT_OK
