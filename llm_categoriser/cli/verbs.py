"""The verbs of the earlier batch tool, on top of the Snakemake workflow in batch mode.

* ``batch-create``: plan the run and submit one remote job per group of batches (``--until submit``);
* ``batch-list``: the remote jobs of the data folder and their status, read from their records;
* ``batch-fetch``: fetch finished jobs and write the documents they carry (``--keep-going``);
* ``batch-cancel``: cancel the remote jobs named in the job handles;
* ``train``: train the cascade's classifier on the model's cached answers (no Snakemake run).

Everything reported after a run is read from the typed records the rules wrote
(``cli/job_records.py``), with the job grouping of the plan's job specs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Any

from .. import remote_ledger, run_outcome, run_stamp
from ..outputs import format_summary
from ..providers import get_provider
from ..records import LedgerJob, PlanSummary, RemoteJobState, RunSummary
from . import ledger_jobs
from .job_records import STATUSES, JobInfo, JobRecords, read_optional
from .present import job_row, print_table, table_lines
from .snakemake_run import RunResult, report_run_failure, run_snakemake
from .workspace import CliError, Workspace, open_workspace

EXIT_OK, EXIT_FAILED, EXIT_PENDING = 0, 2, run_outcome.EXIT_PENDING


def refuse_state_files(args: argparse.Namespace) -> None:
    """The earlier tool kept its jobs in a tracking or state file; the ledger replaced both."""
    for option, value in (("--tracking-file", args.tracking_file), ("--state-file", args.state_file)):
        if value is not None:
            raise CliError(
                f"{option} is no longer used: every remote job is recorded in the ledger "
                f"(<data_dir>/ledger/<provider>/, one JSON file per job, kept across reruns and "
                f"setting changes). For the same effect, `batch-list --json` prints every job "
                f"(add --refresh for its remote state), and `batch-fetch` / `batch-cancel --job-names "
                f"NAME` take the names it shows; for a separate set of jobs use another data folder "
                f"(--config data_dir=PATH)."
            )


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


def planning_errors(run: RunResult) -> list[str]:
    """The error the workflow printed while planning (bad settings, filters, key): from its
    ``error:`` line to the end, as the workflow stops right after it."""
    lines = run.output.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("error: ")]
    return lines[starts[0] :] if starts else []


def cmd_run(args: argparse.Namespace) -> int:
    """Categorise the selection now, in synchronous mode (the earlier tool's plain run).

    After a run that left nothing to do, the stamp of ``run_stamp.py`` lets the next ``run`` of
    the same command answer without Snakemake when nothing has changed since.
    """
    ws = open_workspace(args, filters(args), mode="sync")
    run_stamp.forget(ws.directory)
    run = run_snakemake(ws, [])
    errors = planning_errors(run)
    if run.returncode != 0:
        for line in errors:
            print(line, file=sys.stderr)
        if not errors:
            report_run_failure(run, "run")
        return EXIT_FAILED
    summary = read_optional(ws.path(ws.layout.summary), RunSummary)
    if summary is not None:
        text = format_summary(summary)
        print(text)
        if left_nothing_to_do(ws, summary):
            settings = ws.settings
            run_stamp.record(
                ws.directory,
                getattr(args, "argv", []),
                ws.snakefile,
                settings.documents_dir,
                settings.data_dir,
                settings.report,
                text,
            )
    return EXIT_OK


def left_nothing_to_do(ws: Workspace, summary: RunSummary) -> bool:
    """Whether a successful run left its outputs complete: no flag cut short by the cost cap or
    missing, and no cap stop recorded after the summary was written (the next run would redo
    what the stop deleted)."""
    if summary.statuses.get("over_budget") or summary.statuses.get("missing"):
        return False
    try:
        written = ws.path(ws.layout.summary).stat().st_mtime_ns
    except OSError:
        return False
    try:
        stopped = ws.path(ws.layout.cap_stops).stat().st_mtime_ns
    except OSError:
        stopped = 0
    return stopped <= written


def supersede_for_force(ws: Workspace) -> int:
    """``batch-create --force``: cancel the open jobs of the selection's job ids and remove their
    handles, so that the run submits new ones (the ledger keeps the old ones as superseded)."""
    dry = run_snakemake(ws, [], "--until", "submit", "--dry-run")
    if dry.returncode != 0:
        for line in planning_errors(dry):
            print(line, file=sys.stderr)
        if not planning_errors(dry):
            report_run_failure(dry, "batch-create --force")
        raise CliError("the selection could not be planned; nothing was submitted")
    records = JobRecords(ws)
    layout = ledger_jobs.ledger_layout(ws)
    backends: remote_ledger.Backends = {}
    count = 0
    for job in records.specs:
        info = records.load(job)
        if info.handle is not None and info.handle.name:
            # a handle written before the ledger existed is recorded before it is superseded
            remote_ledger.save(layout, ledger_jobs.entry_for_handle(ws, info.handle))
        for entry in remote_ledger.read_all(layout):
            if entry.job == job and entry.status == "live":
                outcome = remote_ledger.cancel(
                    layout, entry, "superseded", "superseded: batch-create --force", backends
                )
                print(f"{ledger_jobs.entry_label(entry)}: superseded by --force, {outcome}")
                count += 1
        ws.path(ws.layout.handle(job)).unlink(missing_ok=True)
    return count


def cmd_batch_create(args: argparse.Namespace) -> int:
    ws = open_workspace(args, filters(args))
    if args.force:
        supersede_for_force(ws)
    before = identities(JobRecords(ws), JobRecords(ws).on_disk())
    run = run_snakemake(ws, [], "--until", "submit", "--keep-going")
    records = JobRecords(ws)
    infos = [records.load(job) for job in records.specs]
    errors = {i.job: state for i in infos if (state := this_run(i.state, run)) and state.status == "error"}
    if run.returncode != 0 and not errors:
        for line in planning_errors(run):
            print(line, file=sys.stderr)
        if not planning_errors(run):  # the workflow did not start: the plan is not this run's
            report_run_failure(run, "batch-create")
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


def refresh_entries(ws: Workspace, entries: list[LedgerJob]) -> None:
    """``batch-list --refresh``: ask each job's own provider for its state and progress."""
    layout = ledger_jobs.ledger_layout(ws)
    backends: remote_ledger.Backends = {}
    for entry in entries:
        if entry.status in remote_ledger.FINAL and entry.state in ("SUCCEEDED", "CANCELLED"):
            continue
        try:
            remote_ledger.refresh(layout, entry, backends)
        except Exception as exc:  # one job's failure must not stop the others
            print(f"{ledger_jobs.entry_label(entry)}: could not refresh: {type(exc).__name__}: {exc}")


def list_rows(ws: Workspace, verbose: bool) -> list[dict[str, Any]]:
    """Every job: the current submission of each job id (with its ledger record), then every
    other ledger job (superseded, cancelled, dead, or of a job id no longer planned)."""
    records = JobRecords(ws)
    entries = ledger_jobs.read_ledger(ws)
    by_name = {(e.provider, e.name): e for e in entries}
    rows, shown = [], set()
    for job in records.on_disk():
        info = records.load(job)
        row = job_row(info, records, verbose)
        entry = by_name.get((info.provider, info.name)) if info.handle else None
        if entry is not None:
            shown.add((entry.provider, entry.name))
            row = ledger_jobs.with_ledger(row, entry)
        rows.append(row)
    rows += [ledger_jobs.ledger_row(e, verbose) for e in entries if (e.provider, e.name) not in shown]
    return rows


def cmd_batch_list(args: argparse.Namespace) -> int:
    ws = open_workspace(args, need_report=False)
    if args.refresh:
        refresh_entries(ws, ledger_jobs.read_ledger(ws))
    rows = list_rows(ws, args.verbose)
    total = len(rows)
    if args.status:
        rows = [r for r in rows if r["status"] == args.status]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    folder = ws.path(ws.layout.ledger_dir)
    if not rows:
        what = f"{args.status} batch jobs" if args.status else "batch jobs"
        print(f"No {what} in {folder}" + (f" ({total} job(s) with another status)." if total else "."))
        return EXIT_OK
    print_table(*table_lines(rows, args.verbose))
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in ("pending", "completed", "failed"))
    print(f"\n{len(rows)} job(s): {shown}.")
    for row in rows:
        if row.get("error"):
            print(f"{row['job']} failed: {row['error']}")
        elif row.get("note") and row["status"] in ("superseded", "cancelled"):
            print(f"{row['name']}: {row['note']}")
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


def fetch_workspace(args: argparse.Namespace) -> Workspace:
    """The workspace with the settings the open jobs were created with.

    Unless ``--provider`` or ``--config`` says otherwise, a fetch plans with the provider and
    settings recorded on the newest open ledger job (or on the jobs named), so it finds the
    handles it submitted: it never plans with the current default, which would submit new jobs
    or answer with another provider.
    """
    ws = open_workspace(args, filters(args))
    if args.provider or args.config:
        return ws
    entries = ledger_jobs.read_ledger(ws)
    if args.job_names:
        named, _ = ledger_jobs.find_entries(entries, args.job_names)
        entries = named or entries
    entry = ledger_jobs.newest_open_settings(entries)
    if entry is None:
        return ws
    given = [key for key, _ in filters(args)]
    ws = open_workspace(args, [*ledger_jobs.settings_pairs(entry, given), *filters(args)])
    print(
        f"Fetching with the settings of {entry.name} (created {entry.created_at}): provider "
        f"{entry.provider}, model {entry.model}"
    )
    return ws


def cmd_batch_fetch(args: argparse.Namespace) -> int:
    ws = fetch_workspace(args)
    records = JobRecords(ws)
    selected: list[str] | None = None
    targets = ["all"]
    if args.job_names:
        selected = records.resolve_names(args.job_names)
        targets = [ws.layout.job_results(job) for job in selected]
        for job in selected:
            for share in records.load(job).shares:  # the merge jobs that write its documents
                merged = ws.layout.merge_record(records.merge_job(share.subject, share.document))
                if merged not in targets:
                    targets.append(merged)
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


def cancel_targets(ws: Workspace, args: argparse.Namespace) -> list[LedgerJob | str]:
    """The ledger jobs to cancel, in the order named, and what to say about named jobs that
    have nothing to cancel."""
    entries = ledger_jobs.read_ledger(ws)
    records = JobRecords(ws)
    chosen: list[LedgerJob | str] = []
    if args.all:
        for info in (records.load(job) for job in records.on_disk()):
            entry = ledger_jobs.info_entry(ws, info) if info.status == "pending" else None
            if entry is not None:
                chosen.append(entry)
        chosen += [e for e in entries if remote_ledger.is_open(e)]
    else:
        found, rest = ledger_jobs.find_entries(entries, args.job_names)
        jobs = records.resolve_names(rest) if rest else []  # unknown names: CliError
        by_name = {e.name: e for e in found} | {e.display_name: e for e in found if e.display_name}
        for name in args.job_names:
            if name in by_name:
                chosen.append(by_name[name])
                continue
            job = records.resolve_names([name])[0]
            if job not in jobs:
                continue
            jobs.remove(job)
            info = records.load(job)
            label = f"{info.job} ({info.name})" if info.name else info.job
            entry = ledger_jobs.info_entry(ws, info)
            if info.handle is None:
                chosen.append(f"{label}: no job handle; nothing to cancel")
            elif entry is None:
                chosen.append(f"{label}: no remote job (state {info.remote_state}); nothing to cancel")
            elif info.status == "completed":
                chosen.append(f"{label}: already fetched ({info.results_path}); not cancelled")
            else:
                chosen.append(entry)
    unique: dict[tuple[str, str] | str, LedgerJob | str] = {}
    for item in chosen:
        unique.setdefault(item if isinstance(item, str) else (item.provider, item.name), item)
    return list(unique.values())


def cmd_batch_cancel(args: argparse.Namespace) -> int:
    """Cancel ledger jobs, each with its own provider and the settings it was created with."""
    ws = open_workspace(args, need_report=False)
    targets = cancel_targets(ws, args)
    if not targets:
        print(f"No pending batch jobs to cancel in {ws.path(ws.layout.ledger_dir)}.")
        return EXIT_OK
    layout = ledger_jobs.ledger_layout(ws)
    backends: remote_ledger.Backends = {}
    failed = cancelled_remote = 0
    for entry in targets:
        if isinstance(entry, str):
            print(entry)
            continue
        label = ledger_jobs.entry_label(entry)
        if entry.status in remote_ledger.FINAL or not remote_ledger.is_open(entry):
            print(f"{label}: already ended ({entry.status}, state {entry.state}); nothing to cancel")
            continue
        spec = get_provider(entry.provider)
        if not spec.runs_remotely:
            try:
                remote_ledger.backend_for(entry, backends).cancel(entry.name)
            except Exception as exc:  # one job's failure must not stop the others
                failed += 1
                print(f"{label}: could not cancel: {type(exc).__name__}: {exc}")
                continue
            note = "nothing runs remotely, the next fetch still answers it"
            print(f"{label}: cancelled ({spec.name} job: {note})")
            continue
        status = "superseded" if entry.status == "superseded" else "cancelled"
        outcome = remote_ledger.cancel(layout, entry, status, "cancelled by batch-cancel", backends)
        print(f"{label}: {outcome}")
        if outcome.startswith("could not"):
            failed += 1
        else:
            cancelled_remote += 1
    if cancelled_remote:
        print(
            f"The next batch-fetch records the cancelled job(s) as dead; a later run resubmits the "
            f"ones still planned (up to max_job_attempts = {ws.settings.max_job_attempts})."
        )
    return EXIT_FAILED if failed else EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    """Train the cascade's classifier on the model answers in the cache; print what to expect."""
    from ..cascade.learn import describe, train_from_cache

    ws = open_workspace(args)
    local = ws.settings.model_copy(
        update={
            name: str(ws.path(getattr(ws.settings, name))) for name in ("documents_dir", "report", "data_dir")
        }
    )
    started = time.perf_counter()
    model, cached, path = train_from_cache(local)
    print(describe(model))
    if cached.skipped_providers:
        skipped = ", ".join(f"{n} of {p}" for p, n in sorted(cached.skipped_providers.items()))
        print(f"Not learnt from (not a model's answers): {skipped}.")
    print(f"Saved {path} in {time.perf_counter() - started:.1f} s.")
    return EXIT_OK
