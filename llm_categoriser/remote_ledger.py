"""The ledger of remote jobs: every remote batch job ever created, and what became of it.

One record per remote job (``LedgerJob``), in its own file under the ledger folder
(``layout.py``), written atomically as soon as the provider has answered ``create`` and before
the job's handle is written; later changes (fetched, dead, superseded, cancelled, a refreshed
remote state) rewrite only that job's file. No file is shared between jobs, so concurrent
submit and fetch jobs never race on one file, and a crash loses at most the update in flight
(a job created but not yet recorded is adopted by its display name on the next run, and then
recorded). The pipeline never deletes a ledger file: settings changes and reruns add to it.

A job is *superseded* when its job id is submitted again with other content (a setting such as
``temperature`` changed, the report changed, or ``batch-create --force``): its answers would
answer requests the plan no longer makes, so it is cancelled at once with the backend of its
own provider and the settings it was created with (docs/DESIGN.md §22).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from .layout import Layout
from .providers import make_backend
from .providers.base import DEAD_STATES, BatchBackend
from .records import (
    JobProgress,
    LedgerJob,
    LedgerStatus,
    RemoteJobHandle,
    read_record,
    write_record,
)
from .settings import Settings, resolve

log = logging.getLogger(__name__)

FINAL = ("completed", "dead", "cancelled")


def run_settings(entry: LedgerJob) -> Settings:
    """The settings the job was created with (keys this version does not know are left out,
    keys it added since get their defaults)."""
    known = {k: v for k, v in entry.settings.items() if k in Settings.model_fields}
    return resolve(known, env={})


def is_open(entry: LedgerJob) -> bool:
    """Still to be fetched or cancelled: live, or superseded but not yet known to have ended."""
    return entry.status == "live" or (entry.status == "superseded" and entry.state not in DEAD_STATES)


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def ledger_file(layout: Layout, provider: str, name: str) -> Path:
    """A file name from the remote name: readable, and unique even where two names differ only
    in characters a file name cannot hold."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return Path(layout.ledger_job(provider, f"{safe}-{digest}"))


def save(layout: Layout, entry: LedgerJob) -> None:
    write_record(ledger_file(layout, entry.provider, entry.name), entry)


def read_all(layout: Layout) -> list[LedgerJob]:
    """Every ledger job, oldest first; a damaged file is an error that names it."""
    entries = [read_record(path, LedgerJob) for path in sorted(glob.glob(layout.ledger_jobs_glob))]
    return sorted(entries, key=lambda e: (e.created_at, e.name))


# ledger file -> (its identity: inode, mtime, size; its job id; its status), per process: every
# submit looks for the live jobs of its own job id, and reading every entry each time made a
# run's submissions quadratic in the ledger's size (it keeps every job ever created)
_Index = dict[str, tuple[tuple[int, int, int], str, str]]
_index: _Index = {}
_index_lock = threading.Lock()


def live_of(layout: Layout, job: str) -> list[LedgerJob]:
    """The ledger jobs of ``job`` still ``live``, oldest first (read in full only these)."""
    matching = []
    with _index_lock:
        for path in glob.glob(layout.ledger_jobs_glob):
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue
            identity = (info.st_ino, info.st_mtime_ns, info.st_size)
            known = _index.get(path)
            if known is None or known[0] != identity:
                try:
                    data = json.loads(Path(path).read_bytes())
                    known = (identity, str(data["job"]), str(data["status"]))
                except (ValueError, KeyError, TypeError):  # damaged: read_record names the file
                    read_record(path, LedgerJob)
                    raise
                _index[path] = known
            if known[1] == job and known[2] == "live":
                matching.append(path)
    entries = (read_record(path, LedgerJob) for path in matching)
    return sorted((e for e in entries if e.status == "live"), key=lambda e: (e.created_at, e.name))


def find(layout: Layout, provider: str, name: str) -> LedgerJob | None:
    try:
        return read_record(ledger_file(layout, provider, name), LedgerJob)
    except FileNotFoundError:
        return None


def entry_of(handle: RemoteJobHandle, settings: Settings, created_at: str) -> LedgerJob:
    """The ledger record of the remote job of ``handle``, submitted with ``settings``."""
    assert handle.name is not None
    return LedgerJob(
        provider=handle.provider,
        name=handle.name,
        job=handle.job,
        display_name=handle.display_name,
        model=handle.model,
        settings=settings.model_dump(mode="json"),
        batches=handle.batches,
        created_at=created_at,
        adopted=handle.adopted,
    )


def record_created(layout: Layout, handle: RemoteJobHandle, settings: Settings) -> LedgerJob:
    """Record a job just created or adopted (an adopted job keeps its first record)."""
    assert handle.name is not None
    entry = find(layout, handle.provider, handle.name)
    if entry is None:
        entry = entry_of(handle, settings, handle.created_at or now_iso())
    else:
        entry.status, entry.note = "live", ""
    save(layout, entry)
    return entry


def mark(layout: Layout, handle: RemoteJobHandle, status: LedgerStatus, state: str, note: str = "") -> None:
    """Record what a fetch found (still live, completed or dead); unrecorded jobs are left alone."""
    if not handle.name:
        return
    entry = find(layout, handle.provider, handle.name)
    if entry is None:
        return
    if entry.status != "live" and status == "live":
        status = entry.status  # a superseded job stays superseded
    entry.status, entry.state, entry.checked_at = status, state, now_iso()
    entry.note = note or entry.note
    save(layout, entry)


Backends = dict[tuple[str, str], BatchBackend]


def backend_for(entry: LedgerJob, backends: Backends | None = None) -> BatchBackend:
    """The batch API of the job's own provider, with the settings the job was created with."""
    key = (entry.provider, entry.model)
    if backends is not None and key in backends:
        return backends[key]
    backend = make_backend(run_settings(entry))
    if backends is not None:
        backends[key] = backend
    return backend


def cancel(
    layout: Layout, entry: LedgerJob, status: LedgerStatus, note: str, backends: Backends | None = None
) -> str:
    """Cancel ``entry`` with its own provider and record it; the outcome in words.

    Never raises for one job: a job that cannot be cancelled now (no key in this shell, the
    provider unreachable) keeps ``status`` with the reason in its note, and stays open, so
    ``batch-list`` shows it and ``batch-cancel`` can try again.
    """
    entry.status, entry.checked_at = status, now_iso()
    try:
        backend_for(entry, backends).cancel(entry.name)
    except Exception as exc:  # one job's failure must not stop the others
        reason = f"{type(exc).__name__}: {exc}"[:300]
        entry.note = f"{note}; not cancelled: {reason}"
        save(layout, entry)
        return f"could not cancel: {reason}"
    entry.state, entry.note = "CANCELLING", note
    save(layout, entry)
    return "cancellation requested"


def changed_settings(entry: LedgerJob, settings: Settings) -> str:
    """'temperature 0.2 -> 0.5' for the settings that differ from the job's own."""
    now = settings.model_dump(mode="json")
    keys = sorted(k for k, v in entry.settings.items() if k in now and now[k] != v)
    return ", ".join(f"{k} {entry.settings[k]!r} -> {now[k]!r}" for k in keys[:6])


def supersede(
    layout: Layout,
    job: str,
    keep: Iterable[str],
    reason: str,
    settings: Settings,
    logger: logging.Logger = log,
) -> int:
    """Cancel every live ledger job of ``job`` except the remote names in ``keep``; how many."""
    kept = set(keep)
    backends: Backends = {}
    count = 0
    for entry in live_of(layout, job):
        if entry.name in kept:
            continue
        note = f"superseded: {reason} ({changed_settings(entry, settings) or 'its batches changed'})"
        outcome = cancel(layout, entry, "superseded", note, backends)
        logger.info("%s: %s %s %s: %s", job, entry.provider, entry.name, note, outcome)
        count += 1
    return count


def refresh(layout: Layout, entry: LedgerJob, backends: Backends) -> LedgerJob:
    """Ask the job's own provider for its state and progress, and record them."""
    backend = backend_for(entry, backends)
    status = backend.status(entry.name)
    entry.state, entry.checked_at = status.state, now_iso()
    progress = getattr(backend, "progress", None)  # optional in a backend (providers/base.py)
    counts = progress(entry.name) if progress is not None else None
    if counts is not None:
        entry.progress = JobProgress.model_validate(counts)
    if entry.status == "live" and status.state in DEAD_STATES:
        entry.status = "cancelled" if status.state in ("CANCELLED", "CANCELLING") else "dead"
    save(layout, entry)
    return entry
