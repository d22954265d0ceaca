"""How the command-line interface shows jobs: table rows, JSON rows, number ranges."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .job_records import JobInfo, JobRecords


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


def job_row(info: JobInfo, records: JobRecords, verbose: bool) -> dict[str, Any]:
    """One job as ``batch-list --json`` shows it."""
    attempt = info.handle.attempt if info.handle else (info.attempts.attempt if info.attempts else 1)
    row: dict[str, Any] = {
        "job": info.job,
        "status": info.status,
        "provider": info.provider,
        "name": info.name,
        "state": info.remote_state,
        "created_at": info.handle.created_at if info.handle else "",
        "attempt": attempt,
        "subjects": sorted({s.subject for s in info.shares}),
        "documents": [
            {
                "subject": s.subject,
                "document": s.document,
                "batch_indexes": sorted(set(s.indexes)),
                "issues": len(s.flag_keys),
                **({"issue_ids": records.flag_ids(s)} if verbose else {}),
            }
            for s in info.shares
        ],
        "issues": info.flags,
        "results": str(info.results_path) if info.results is not None else None,
    }
    if info.status == "failed":
        row["error"] = info.failure
    if verbose:
        row["issue_keys"] = [k for s in info.shares for k in s.flag_keys]
    return row


def progress_cell(progress: dict[str, int] | None) -> str:
    """'3/5' requests done (', 1 failed'), or '-' when the provider was not asked."""
    if not progress or not progress.get("total"):
        return "-"
    done = progress["succeeded"] + progress["failed"]
    failed = f", {progress['failed']} failed" if progress["failed"] else ""
    return f"{done}/{progress['total']}{failed}"


def table_lines(rows: Sequence[dict[str, Any]], verbose: bool) -> tuple[list[str], list[list[str]]]:
    """The header and lines of the ``batch-list`` table: one line per document of a job."""
    header = [
        "JOB",
        "STATUS",
        "PROVIDER",
        "REMOTE NAME",
        "STATE",
        "DONE",
        "CREATED",
        "SUBJECT",
        "DOCUMENT",
        "BATCHES",
        "ISSUES",
    ]
    if verbose:
        header.append("ISSUE IDS")
    table: list[list[str]] = []
    for row in rows:
        job_cells = [
            row["job"],
            row["status"],
            row["provider"] or "-",
            row["name"] or "-",
            row.get("state") or "-",
            progress_cell(row.get("progress")),
            row["created_at"] or "-",
        ]
        docs = row["documents"] or [{"subject": "-", "document": "-", "batch_indexes": [], "issues": 0}]
        for n, doc in enumerate(docs):
            cells = job_cells if n == 0 else [""] * len(job_cells)
            line = [*cells, doc["subject"], doc["document"], ranges(doc["batch_indexes"]), str(doc["issues"])]
            if verbose:
                line.append(doc.get("issue_ids", ""))
            table.append(line)
    return header, table


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
