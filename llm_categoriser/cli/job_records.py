"""The remote jobs of a workspace as the rules recorded them (records of ``records/remote.py``).

A job's status comes from its typed records, never from file times or logs: ``completed``
when its results belong to its current handle, ``failed`` when it was abandoned or died
(the fetch rule removes a dead job's handle and counts the death in its attempts),
``pending`` otherwise. Which batches a job carries comes from its handle, or before it is
submitted from the job spec the plan wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..plan_jobs import read_job_specs
from ..records import (
    Manifest,
    Record,
    RecordError,
    RemoteJobAttempts,
    RemoteJobHandle,
    RemoteJobResults,
    RemoteJobState,
    read_record,
)
from .workspace import CliError, Workspace

STATUSES = ("pending", "completed", "failed", "superseded", "cancelled")
# Handle states of a job that was never sent: too many dead attempts, or the run's cost cap.
STOPPED_STATES = ("ABANDONED", "OVER_BUDGET")
R = TypeVar("R", bound=Record)


def read_optional(path: Path, model: type[R]) -> R | None:
    try:
        return read_record(path, model)
    except FileNotFoundError:
        return None
    except RecordError as exc:
        raise CliError(str(exc)) from None


@dataclass
class DocumentShare:
    """The part of one document that a job carries."""

    subject: str
    document: str
    indexes: list[int] = field(default_factory=list)
    flag_keys: list[str] = field(default_factory=list)


@dataclass
class JobInfo:
    job: str
    handle: RemoteJobHandle | None
    results: RemoteJobResults | None
    results_path: Path
    attempts: RemoteJobAttempts | None
    state: RemoteJobState | None
    shares: list[DocumentShare]

    @property
    def name(self) -> str:
        if self.handle and self.handle.name:
            return self.handle.name
        history = self.attempts.history if self.attempts else []
        return history[-1].name or "" if history else ""

    @property
    def provider(self) -> str:
        return self.handle.provider if self.handle else ""

    @property
    def remote_state(self) -> str:
        return self.handle.state if self.handle else ""

    @property
    def identity(self) -> tuple[str | None, str] | None:
        """Which submission the handle is: changes when the job is (re)submitted."""
        return (self.handle.name, self.handle.created_at) if self.handle else None

    @property
    def current_state(self) -> RemoteJobState | None:
        """The state record, if it was written for the current handle (or for no handle)."""
        if self.state is None:
            return None
        if self.handle is not None and self.state.handle_created_at != self.handle.created_at:
            return None
        return self.state

    @property
    def fetched(self) -> bool:
        if self.results is None:
            return False
        return self.handle is None or self.results.handle_created_at == self.handle.created_at

    @property
    def died(self) -> bool:
        """The last remote job died and was not resubmitted since."""
        return self.handle is None and bool(self.attempts and self.attempts.history)

    @property
    def status(self) -> str:
        if self.remote_state in STOPPED_STATES or (self.died and not self.fetched):
            return "failed"
        return "completed" if self.fetched else "pending"

    @property
    def failure(self) -> str:
        if self.handle and self.remote_state in STOPPED_STATES:
            return self.handle.error or f"job {self.remote_state.lower()}"
        history = self.attempts.history if self.attempts else []
        if history:
            last = history[-1]
            text = f"job {last.name or '?'} ended {last.state}"
            return f"{text} ({last.error})" if last.error else text
        return ""

    def results_count(self) -> int:
        return sum(len(b.items) for b in self.results.batches) if self.results else 0

    @property
    def flags(self) -> int:
        return sum(len(s.flag_keys) for s in self.shares)


class JobRecords:
    """Reads the job records of one workspace (manifests are read once each)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.layout = ws.layout
        self.specs = read_job_specs(self.layout, ws.directory)
        self._manifests: dict[tuple[str, str], Manifest | None] = {}

    def path(self, relative: str) -> Path:
        return self.ws.path(relative)

    def manifest(self, subject: str, document: str) -> Manifest | None:
        if (subject, document) not in self._manifests:
            path = self.path(self.layout.manifest(subject, document))
            self._manifests[(subject, document)] = read_optional(path, Manifest)
        return self._manifests[(subject, document)]

    def merge_job(self, subject: str, document: str) -> str:
        """The merge job that writes the document's CSV (``targets.merge_groups``)."""
        from ..targets import merge_job_of

        manifest = self.manifest(subject, document)
        first = (subject, document, manifest.batches[0]) if manifest and manifest.batches else None
        job = next((job for job, refs in self.specs.items() if first in refs), None)
        return merge_job_of(subject, job)

    def load(self, job: str) -> JobInfo:
        handle = read_optional(self.path(self.layout.handle(job)), RemoteJobHandle)
        shares: dict[tuple[str, str], DocumentShare] = {}
        if handle and handle.batches:
            for ref in handle.batches:
                share = shares.setdefault(
                    (ref.subject, ref.document), DocumentShare(ref.subject, ref.document)
                )
                share.indexes.append(ref.index)
                share.flag_keys.extend(ref.flag_keys)
        else:
            for subject, document, batch in self.specs.get(job, []):
                share = shares.setdefault((subject, document), DocumentShare(subject, document))
                manifest = self.manifest(subject, document)
                if manifest is None:
                    continue
                if batch in manifest.batches:
                    share.indexes.append(manifest.batches.index(batch))
                share.flag_keys.extend(f.key for f in manifest.flags if f.batch_id == batch)
        results_path = self.path(self.layout.job_results(job))
        return JobInfo(
            job=job,
            handle=handle,
            results=read_optional(results_path, RemoteJobResults),
            results_path=results_path,
            attempts=read_optional(self.path(self.layout.attempts(job)), RemoteJobAttempts),
            state=read_optional(self.path(self.layout.job_state(job)), RemoteJobState),
            shares=list(shares.values()),
        )

    def on_disk(self) -> list[str]:
        """The jobs with any record in the remote-jobs folder."""
        folder = self.path(self.layout.remote_jobs_dir)
        if not folder.is_dir():
            return []
        names = ("handle", "job_results", "attempts", "job_state")
        return sorted(
            p.name
            for p in folder.iterdir()
            if p.is_dir() and any(self.path(getattr(self.layout, n)(p.name)).exists() for n in names)
        )

    def flag_ids(self, share: DocumentShare) -> str:
        """The flags of a share as the ``issue_id`` numbers of the document CSV (keys if unknown)."""
        from .present import ranges

        manifest = self.manifest(share.subject, share.document)
        numbers = {f.key: f.issue_id for f in manifest.flags} if manifest else {}
        known = [numbers[k] for k in share.flag_keys if k in numbers]
        unknown = [k for k in share.flag_keys if k not in numbers]
        return ",".join(x for x in (ranges(known) if known else "", *unknown) if x)

    def resolve_names(self, names: Sequence[str]) -> list[str]:
        """Our job ids, or the remote (``batches/...``) or display names recorded for them."""
        index: dict[str, str] = {job: job for job in self.specs}
        for job in self.on_disk():
            index[job] = job
            info = self.load(job)
            if info.handle:
                for name in (info.handle.name, info.handle.display_name):
                    if name:
                        index.setdefault(name, job)
            for entry in info.attempts.history if info.attempts else []:
                if entry.name:
                    index.setdefault(entry.name, job)
        unknown = [n for n in names if n not in index]
        if unknown:
            known = sorted(set(index.values()))
            shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
            raise CliError(
                f"unknown job name(s): {', '.join(unknown)}. Known jobs: {shown or 'none (run batch-create)'}"
            )
        jobs: list[str] = []
        for name in names:
            if index[name] not in jobs:
                jobs.append(index[name])
        return jobs
