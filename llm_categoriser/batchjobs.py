"""Batch mode: submit jobs, fetch them when done, never lose or duplicate one (DESIGN §5).

Files of a job ``J`` under ``<data_dir>/jobs/J/``:

* ``handle.json`` (output of the submit rule): provider, remote job name, model, the batches
  it carries with their fingerprints, created_at, attempt. Written only after the job exists;
  a crash between ``create`` and this write is healed by adopting the live job with the same
  deterministic display name on the next run.
* ``results.json`` (output of the fetch rule): validated results of every batch of the job.
* ``attempts.json``: how many times the job died (FAILED, EXPIRED, CANCELLED); fetch writes it
  and removes the dead handle, so the next run resubmits, up to ``max_job_attempts``; after
  that the job's flags are written as explicitly failed instead of blocking the run forever.

Answers already obtained are kept per batch fingerprint in ``<data_dir>/cache/`` (``answers.py``),
so a resubmitted job (an edited flag, a dead job) only sends the batches that still need an answer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .answers import load_answer, save_answer
from .atomic import atomic_write_json, read_json
from .categorise import categorise_batch
from .models import BatchResult, IssueResult
from .prompts import load_templates, render_user
from .providers.base import Answer, Request
from .providers.batch import DEAD_STATES, PENDING_STATES, BatchBackend, make_backend
from .settings import Settings

log = logging.getLogger(__name__)


class BatchRef(BaseModel):
    subject: str
    document: str
    batch_id: str
    index: int = Field(description="position of the batch in its document")
    fingerprint: str
    issue_keys: list[str]
    cached: bool = False


class Handle(BaseModel):
    job: str
    provider: str
    model: str
    name: str | None = None
    display_name: str = ""
    attempt: int = 1
    created_at: str = ""
    state: str = "SUBMITTED"
    transport: str = ""
    payload_bytes: int = 0
    adopted: bool = False
    error: str = ""
    batches: list[BatchRef]


class PendingJob(Exception):
    """The job is still running: the fetch rule fails fast with this message."""


class DeadJob(Exception):
    """The job FAILED, EXPIRED or was CANCELLED; the next run resubmits it."""


def job_dir(settings: Settings, job: str) -> Path:
    return Path(settings.data_dir) / "jobs" / job


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def first_request(batch: dict[str, Any]) -> Request:
    templates = load_templates()
    return Request(
        key=batch["fingerprint"],
        system=templates.system,
        user=render_user(batch, templates=templates),
        batch=batch,
        local_ids={i["local_id"] for i in batch["issues"]},
    )


def read_attempts(settings: Settings, job: str) -> dict[str, Any]:
    try:
        return read_json(job_dir(settings, job) / "attempts.json")
    except (FileNotFoundError, ValueError):
        return {"attempt": 1, "history": []}


def display_name(job: str, batches: list[dict[str, Any]], attempt: int) -> str:
    digest = hashlib.sha256("".join(b["fingerprint"] for b in batches).encode()).hexdigest()[:16]
    return f"llmcat-{job}-{digest}-a{attempt}"


def submit(
    job: str,
    batch_files: list[str],
    handle_file: str,
    settings: Settings,
    backend: BatchBackend | None = None,
    logger: logging.Logger = log,
    indexes: list[int] | None = None,
) -> Handle:
    batches = [read_json(p) for p in batch_files]
    indexes = indexes or [0] * len(batches)
    refs: list[BatchRef] = []
    to_send: list[dict[str, Any]] = []
    for batch, index in zip(batches, indexes, strict=True):
        cached = settings.reuse_answers and load_answer(settings.data_dir, batch["fingerprint"]) is not None
        refs.append(
            BatchRef(
                subject=batch["subject"],
                document=batch["document"],
                batch_id=batch["batch_id"],
                index=index,
                fingerprint=batch["fingerprint"],
                issue_keys=[i["key"] for i in batch["issues"]],
                cached=cached,
            )
        )
        if not cached:
            to_send.append(batch)
    model = settings.effective_model
    handle = Handle(job=job, provider=settings.provider, model=model, batches=refs, created_at=now_iso())
    if not to_send:
        handle.state = "CACHED"
        logger.info("%s: all %d batch(es) already answered; nothing to submit", job, len(refs))
        atomic_write_json(handle_file, handle.model_dump(mode="json"))
        return handle
    attempts = read_attempts(settings, job)
    handle.attempt = int(attempts["attempt"])
    if handle.attempt > settings.max_job_attempts:
        handle.state = "ABANDONED"
        last = attempts["history"][-1] if attempts["history"] else {}
        handle.error = (
            f"gave up after {settings.max_job_attempts} attempt(s); last: {last.get('state', '?')} "
            f"{last.get('error', '')}".strip()
        )
        logger.error("%s: %s", job, handle.error)
        atomic_write_json(handle_file, handle.model_dump(mode="json"))
        return handle
    backend = backend or make_backend(settings)
    handle.display_name = display_name(job, to_send, handle.attempt)
    requests = [first_request(b) for b in to_send]
    created = backend.create(handle.display_name, requests)
    handle.name, handle.transport, handle.payload_bytes = (
        created.name,
        created.transport,
        created.payload_bytes,
    )
    handle.adopted = created.adopted
    atomic_write_json(handle_file, handle.model_dump(mode="json"))
    logger.info(
        "%s: %s %s with %d request(s) (%s, %d bytes), attempt %d",
        job,
        "adopted" if created.adopted else "created",
        created.name,
        len(requests),
        created.transport,
        created.payload_bytes,
        handle.attempt,
    )
    return handle


def describe(handle: Handle, state: str, since: str | None = None) -> list[str]:
    """One line per document: '<job> <subject>/<document> batches 0-4: RUNNING for 12 min'."""
    age = ""
    start = since or handle.created_at
    if start:
        try:
            minutes = (datetime.now(UTC) - datetime.fromisoformat(start)).total_seconds() / 60
            age = f" for {minutes:.0f} min"
        except ValueError:
            age = ""
    by_doc: dict[tuple[str, str], list[int]] = {}
    for ref in handle.batches:
        if not ref.cached:
            by_doc.setdefault((ref.subject, ref.document), []).append(ref.index)
    lines = []
    for (subject, document), indexes in by_doc.items():
        lines.append(
            f"{handle.name or handle.job} {subject}/{document} batches {_ranges(indexes)}: {state}{age}"
        )
    return lines


def _ranges(numbers: list[int]) -> str:
    """'0-4,7' for [0, 1, 2, 3, 4, 7]."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@dataclass
class FetchOutcome:
    handle: Handle
    results: list[BatchResult]
    state: str


def wait_for(
    backend: BatchBackend, name: str, minutes: float, sleep: Callable[[float], None] = time.sleep
) -> Any:
    """Poll with backoff (5 s doubling to 5 min) for at most ``minutes``; return the last status."""
    deadline = time.monotonic() + minutes * 60
    delay = 5.0
    while True:
        status = backend.status(name)
        if status.state not in PENDING_STATES or time.monotonic() >= deadline:
            return status
        sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 300.0)


def fetch(
    handle_file: str,
    batch_files: list[str],
    results_file: str,
    settings: Settings,
    backend: BatchBackend | None = None,
    logger: logging.Logger = log,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchOutcome:
    handle = Handle.model_validate(read_json(handle_file))
    batches = {b["fingerprint"]: b for b in (read_json(p) for p in batch_files)}
    results: list[BatchResult] = []
    missing = [r for r in handle.batches if r.fingerprint not in batches]
    if missing:
        raise RuntimeError(f"{handle_file} refers to batches that are no longer planned; rerun to resubmit")
    to_answer = [r for r in handle.batches if not r.cached]
    for ref in handle.batches:
        if ref.cached:
            cached = load_answer(settings.data_dir, ref.fingerprint)
            if cached is None:
                raise RuntimeError(
                    f"cached answer for {ref.batch_id} vanished; delete {handle_file} and rerun"
                )
            results.append(cached)
    state = handle.state
    if to_answer and handle.state == "ABANDONED":
        for ref in to_answer:
            results.append(
                _all_failed(batches[ref.fingerprint], handle, f"batch job abandoned: {handle.error}")
            )
    elif to_answer:
        backend = backend or make_backend(settings)
        assert handle.name is not None
        status = wait_for(backend, handle.name, settings.batch_wait_minutes, sleep)
        state = status.state
        if state in PENDING_STATES:
            raise PendingJob("\n".join(describe(handle, state, status.create_time)))
        if state in DEAD_STATES or state != "SUCCEEDED":
            _record_death(settings, handle, state, status.error)
            Path(handle_file).unlink(missing_ok=True)
            attempts = read_attempts(settings, handle.job)["attempt"]
            what = (
                f"the next run resubmits it (attempt {attempts} of {settings.max_job_attempts})"
                if attempts <= settings.max_job_attempts
                else "the next run marks its flags as failed (no attempts left)"
            )
            raise DeadJob(
                "\n".join(describe(handle, state, status.create_time))
                + f"\n{handle.job}: job {handle.name} ended {state}"
                + (f" ({status.error})" if status.error else "")
                + f"; {what}."
            )
        requests = [first_request(batches[r.fingerprint]) for r in to_answer]
        answers = backend.results(handle.name, requests)
        retry_provider = _retry_provider(backend)
        for ref in to_answer:
            batch = batches[ref.fingerprint]
            answer = answers.get(ref.fingerprint) or Answer(text=None, error="no response for this request")
            result = categorise_batch(
                batch, retry_provider, settings.max_retries, logger=logger, first_answer=answer
            )
            result.extra["job"] = handle.name
            results.append(result)
            save_answer(settings.data_dir, result)
    payload = {
        "job": handle.job,
        "name": handle.name,
        "state": state,
        "fetched_at": now_iso(),
        "batches": [r.model_dump(mode="json") for r in results],
    }
    atomic_write_json(results_file, payload)
    saved = sum(len(r.items) for r in results)
    logger.info("Saved %d result(s) to %s", saved, results_file)
    return FetchOutcome(handle, results, state)


def _retry_provider(backend: BatchBackend) -> Any:
    """Flags that failed or were invalid inside a finished job are asked again on their own,
    synchronously, so a handful of flags never waits another batch cycle."""
    sync = getattr(backend, "sync_provider", None)
    if sync is not None:
        return sync
    from .providers.offline import OfflineProvider

    return OfflineProvider()


def _all_failed(batch: dict[str, Any], handle: Handle, error: str) -> BatchResult:
    return BatchResult(
        batch_id=batch["batch_id"],
        fingerprint=batch["fingerprint"],
        provider=handle.provider,
        model=handle.model,
        items={i["key"]: IssueResult(status="failed", error=error) for i in batch["issues"]},
    )


def _record_death(settings: Settings, handle: Handle, state: str, error: str) -> None:
    attempts = read_attempts(settings, handle.job)
    attempts["history"].append(
        {"attempt": handle.attempt, "name": handle.name, "state": state, "error": error, "at": now_iso()}
    )
    attempts["attempt"] = handle.attempt + 1
    atomic_write_json(job_dir(settings, handle.job) / "attempts.json", attempts)
