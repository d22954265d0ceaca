"""The ledger of remote jobs as the command-line interface uses it (``remote_ledger.py``).

Listing, cancelling and fetching go by the ledger: every remote job ever created, with the
provider and the settings it was created with, so a command never reaches a job through the
current default provider, and a job replaced by a setting change is still listed and reachable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import remote_ledger
from ..layout import Layout
from ..records import LedgerJob, RecordError, RemoteJobHandle
from ..settings import Settings
from .job_records import JobInfo
from .workspace import CliError, Workspace

# Settings that locate the workspace, or that the verb sets itself, are not taken from a job.
NOT_FROM_JOB = ("documents_dir", "report", "data_dir", "mode")
STATUS_OF = {
    "live": "pending",
    "completed": "completed",
    "dead": "failed",
    "superseded": "superseded",
    "cancelled": "cancelled",
}


def ledger_layout(ws: Workspace) -> Layout:
    """The run's layout as seen from the current directory (the workspace may be elsewhere)."""
    return Layout(str(ws.path(ws.layout.docs)), str(ws.path(ws.layout.data)))


def read_ledger(ws: Workspace) -> list[LedgerJob]:
    try:
        return remote_ledger.read_all(ledger_layout(ws))
    except RecordError as exc:
        raise CliError(str(exc)) from None


def entry_for_handle(ws: Workspace, handle: RemoteJobHandle) -> LedgerJob:
    """The ledger job of a handle; a handle written before the ledger existed gets a record now,
    with the workspace's settings and the handle's own provider."""
    assert handle.name is not None
    found = remote_ledger.find(ledger_layout(ws), handle.provider, handle.name)
    if found is not None:
        return found
    settings = ws.settings.model_copy(update={"provider": handle.provider, "model": handle.model})
    return remote_ledger.entry_of(handle, settings, handle.created_at)


def ledger_row(entry: LedgerJob, verbose: bool) -> dict[str, Any]:
    """A ledger job that is not the current submission of its job id, as ``batch-list`` shows it."""
    shares: dict[tuple[str, str], dict[str, Any]] = {}
    for ref in entry.batches:
        share = shares.setdefault(
            (ref.subject, ref.document),
            {"subject": ref.subject, "document": ref.document, "batch_indexes": [], "issues": 0},
        )
        share["batch_indexes"].append(ref.index)
        share["issues"] += len(ref.flag_keys)
    row: dict[str, Any] = {
        "job": entry.job,
        "status": STATUS_OF[entry.status],
        "provider": entry.provider,
        "name": entry.name,
        "state": entry.state,
        "created_at": entry.created_at,
        "attempt": 1,
        "subjects": sorted({s for s, _ in shares}),
        "documents": [dict(d, batch_indexes=sorted(set(d["batch_indexes"]))) for d in shares.values()],
        "issues": sum(d["issues"] for d in shares.values()),
        "results": None,
    }
    if verbose:
        row["issue_keys"] = [k for ref in entry.batches for k in ref.flag_keys]
    return with_ledger(row, entry)


def with_ledger(row: dict[str, Any], entry: LedgerJob) -> dict[str, Any]:
    """Add what the ledger knows of a job to its row."""
    row["state"] = entry.state
    row["ledger_status"] = entry.status
    row["model"] = entry.model
    row["settings"] = entry.settings
    row["checked_at"] = entry.checked_at
    row["progress"] = entry.progress.model_dump() if entry.progress else None
    if entry.note:
        row["note"] = entry.note
    if entry.status == "superseded":
        row["status"] = "superseded"
    return row


def find_entries(entries: Sequence[LedgerJob], names: Sequence[str]) -> tuple[list[LedgerJob], list[str]]:
    """The ledger jobs with these remote or display names, and the names that are not theirs."""
    index: dict[str, LedgerJob] = {}
    for entry in entries:
        index.setdefault(entry.name, entry)
        if entry.display_name:
            index.setdefault(entry.display_name, entry)
    found = [index[n] for n in names if n in index]
    return found, [n for n in names if n not in index]


def newest_open_settings(entries: Sequence[LedgerJob]) -> LedgerJob | None:
    """The most recently created job still to be fetched."""
    live = [e for e in entries if e.status == "live"]
    return max(live, key=lambda e: e.created_at) if live else None


def config_value(value: Any) -> str:
    """A setting as a ``--config`` value that Snakemake and ``open_workspace`` read back as it was."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


def settings_pairs(entry: LedgerJob, keep: Sequence[str]) -> list[tuple[str, str]]:
    """The settings ``entry`` was created with, as ``--config`` pairs (except the keys in ``keep``)."""
    known = set(Settings.model_fields)
    return [
        (key, config_value(value))
        for key, value in entry.settings.items()
        if key in known and key not in NOT_FROM_JOB and key not in keep
    ]


def entry_label(entry: LedgerJob) -> str:
    return f"{entry.job} ({entry.name})"


def info_entry(ws: Workspace, info: JobInfo) -> LedgerJob | None:
    if info.handle is None or not info.handle.name:
        return None
    return entry_for_handle(ws, info.handle)
