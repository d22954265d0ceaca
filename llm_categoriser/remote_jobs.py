"""Batch mode: submit remote jobs, fetch them when done, never lose or duplicate one (docs/DESIGN.md §7).

The files of a remote job (``layout.py``; records in ``records/remote.py``):

* the handle (output of the submit rule): provider, remote job name, model, the batches it
  carries with their fingerprints, created_at, attempt. Written only after the job exists; a
  crash between ``create`` and this write is healed by adopting the live job with the same
  deterministic display name on the next run.
* the results (output of the fetch rule): validated results of every batch of the job.
* the attempts: how many times the job died (FAILED, EXPIRED, CANCELLED); fetch writes it and
  removes the dead handle, so the next run resubmits, up to ``max_job_attempts``; after that
  the job's flags are written as explicitly failed instead of blocking the run forever.
* the state: what the last submit or fetch found (pending, completed, dead, error), with its
  message; the command-line interface reads it.

Answers already obtained are kept per batch fingerprint in the answer cache (``answers.py``), so
a resubmitted job (an edited flag, a dead job) only sends the batches that still need an answer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import remote_ledger, spending
from .answers import load_answer, recover_answers, save_answer, save_answers_later
from .categorise import categorise_batch, over_budget
from .costs.meter import SpendMeter
from .costs.prices import format_usd
from .costs.usage import Spend
from .fallback import SPENT, backend_of, link_of, names, settings_for
from .layout import Layout
from .prompts import load_templates, render_user
from .providers.base import (
    DEAD_STATES,
    PENDING_STATES,
    Answer,
    BatchBackend,
    Created,
    ProviderError,
    Request,
)
from .records import (
    BatchResult,
    DeadAttempt,
    FlagResult,
    PlannedBatch,
    RemoteBatch,
    RemoteJobAttempts,
    RemoteJobHandle,
    RemoteJobResults,
    RemoteJobState,
    RemoteStatus,
    read_record,
    write_record,
)
from .settings import Settings

log = logging.getLogger(__name__)


NO_RESPONSE = "no response for this request"


class PendingJob(Exception):
    """The job is still running: the fetch rule fails fast with this message."""


class DeadJob(Exception):
    """The job FAILED, EXPIRED or was CANCELLED; the next run resubmits it."""


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def first_request(batch: PlannedBatch) -> Request:
    templates = load_templates()
    return Request(
        key=batch.fingerprint,
        system=templates.system,
        user=render_user(batch, templates=templates),
        batch=batch,
        local_ids={flag.local_id for flag in batch.flags},
    )


def read_attempts(layout: Layout, job: str) -> RemoteJobAttempts:
    try:
        return read_record(layout.attempts(job), RemoteJobAttempts)
    except FileNotFoundError:
        return RemoteJobAttempts()


def display_name(job: str, batches: list[PlannedBatch], attempt: int) -> str:
    digest = hashlib.sha256("".join(b.fingerprint for b in batches).encode()).hexdigest()[:16]
    return f"llmcat-{job}-{digest}-a{attempt}"


def write_state(
    layout: Layout,
    job: str,
    handle: RemoteJobHandle | None,
    status: RemoteStatus,
    remote: str = "",
    message: str = "",
    error_type: str = "",
) -> None:
    """Record what this submit or fetch found, tied to ``handle`` (the CLI reads it)."""
    state = RemoteJobState(
        job=job,
        status=status,
        state=remote,
        name=handle.name if handle else None,
        handle_created_at=handle.created_at if handle else "",
        message=message,
        error_type=error_type,
        checked_at=time.time(),
    )
    write_record(layout.job_state(job), state)


@contextmanager
def record_failure(layout: Layout, job: str, handle_file: str) -> Iterator[None]:
    """Write an ``error`` state for an exception other than a pending or dead job."""
    try:
        yield
    except (PendingJob, DeadJob):
        raise
    except Exception as exc:
        try:
            handle: RemoteJobHandle | None = read_record(handle_file, RemoteJobHandle)
        except (OSError, ValueError):
            handle = None
        write_state(layout, job, handle, "error", message=str(exc), error_type=type(exc).__name__)
        raise


@dataclass(frozen=True)
class RemoteJobStep:
    """What a submit or fetch step of one remote job works with: the job, how to read its
    planned batches (a fetch reads them only once its job has finished), its handle file, the
    run's settings, and what tests replace (the backend; None: the provider chain's), the job's
    logger, the spend meter (None: the run's), the sleep between status polls."""

    job: str
    planned: Callable[[], list[PlannedBatch]]
    handle_file: str
    settings: Settings
    backend: BatchBackend | None = None
    logger: logging.Logger = log
    meter: SpendMeter | None = None
    sleep: Callable[[float], None] = time.sleep


def submit(step: RemoteJobStep, indexes: list[int] | None = None) -> RemoteJobHandle:
    """Create the remote job of ``step`` (or adopt it, or record why not) and write its handle;
    ``indexes`` are the batches' numbers within their documents."""
    job, handle_file, settings, logger = step.job, step.handle_file, step.settings, step.logger
    layout = settings.layout
    batches = step.planned()
    indexes = indexes or [0] * len(batches)
    refs: list[RemoteBatch] = []
    to_send: list[PlannedBatch] = []
    found = {b.fingerprint for b in batches if settings.reuse_answers and load_answer(layout, b.fingerprint)}
    if settings.reuse_answers and len(found) < len(batches):  # answers a killed fetch left uncached
        found |= recover_answers(layout, layout.job_results(job), {b.fingerprint for b in batches} - found)
    for batch, index in zip(batches, indexes, strict=True):
        cached = batch.fingerprint in found
        refs.append(
            RemoteBatch(
                subject=batch.subject,
                document=batch.document,
                batch_id=batch.batch_id,
                index=index,
                fingerprint=batch.fingerprint,
                flag_keys=[flag.key for flag in batch.flags],
                cached=cached,
            )
        )
        if not cached:
            to_send.append(batch)
    model = settings.effective_model
    handle = RemoteJobHandle(
        job=job, provider=settings.provider, model=model, batches=refs, created_at=now_iso()
    )
    if not to_send:
        handle.state = "CACHED"
        logger.info("%s: all %d batch(es) already answered; nothing to submit", job, len(refs))
        remote_ledger.supersede(layout, job, (), "all its batches are answered", settings, logger)
        write_record(handle_file, handle)
        return handle
    attempts = read_attempts(layout, job)
    handle.attempt = attempts.attempt
    if handle.attempt > settings.max_job_attempts:
        handle.state = "ABANDONED"
        last = attempts.history[-1] if attempts.history else None
        handle.error = (
            f"gave up after {settings.max_job_attempts} attempt(s); last: {last.state if last else '?'} "
            f"{last.error if last else ''}".strip()
        )
        logger.error("%s: %s", job, handle.error)
        write_record(handle_file, handle)
        return handle
    handle.display_name = display_name(job, to_send, handle.attempt)
    requests = [first_request(b) for b in to_send]
    meter = step.meter or spending.meter(settings)
    try:
        created, handle.provider, handle.model, expected = create_job(
            handle.display_name, requests, settings, step.backend, logger, job, meter
        )
    except OverBudget as stop:
        handle.state = "OVER_BUDGET"
        handle.error = f"{meter.stop_reason()} (this job: about {format_usd(stop.expected)})"
        logger.warning("%s: not submitted: %s", job, handle.error)
        write_record(handle_file, handle)
        documents = dict.fromkeys((b.subject, b.document) for b in to_send)
        meter.stopped(handle_file, layout.job_results(job), *(layout.document_stats(*d) for d in documents))
        return handle
    handle.expected_cost_usd = None if expected is None else float(expected)
    handle.name, handle.transport, handle.payload_bytes = (
        created.name,
        created.transport,
        created.payload_bytes,
    )
    handle.adopted = created.adopted
    # before the handle: never unrecorded; with the settings of the provider that took the job
    remote_ledger.record_created(layout, handle, settings_for(settings, handle.provider))
    remote_ledger.supersede(layout, job, (created.name,), "replaced by " + created.name, settings, logger)
    write_record(handle_file, handle)
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


class OverBudget(Exception):
    """A remote job the cost cap leaves no room for: it is not created."""

    def __init__(self, expected: Decimal | None) -> None:
        super().__init__(f"over the cost cap (about {format_usd(expected)})")
        self.expected = expected


def create_job(
    display_name: str,
    requests: list[Request],
    settings: Settings,
    backend: BatchBackend | None,
    logger: logging.Logger,
    job: str,
    meter: SpendMeter | None = None,
) -> tuple[Created, str, str, Decimal | None]:
    """Create the remote job with the first provider of the chain that can; returns the job,
    that provider, its model and the job's estimated cost at that provider's batch rates. A
    provider that is spent (quota, or 429, 5xx or unreachable after its retries) hands the job
    to the next; an invalid key stops the run. With a ``meter``, the job's estimated cost is
    reserved against the cap before it is created (released if the creation fails); when the
    cap leaves no room for it, ``OverBudget`` is raised and nothing is created."""
    chain = [backend.provider] if backend is not None else names(settings)
    for index, provider in enumerate(chain):
        # given a backend (tests), the run's own settings price it
        seen = settings if backend is not None else settings_for(settings, provider)
        expected = spending.expected_cost(seen, requests, batch=True)
        if meter is not None and not meter.reserve(expected):
            raise OverBudget(expected)
        try:
            made = backend if backend is not None else backend_of(settings, provider)
            return made.create(display_name, requests), provider, made.model, expected
        except ProviderError as exc:
            if meter is not None:
                meter.release(expected)
            if exc.kind not in SPENT or index == len(chain) - 1:
                raise
            logger.warning(
                "%s: provider %s is spent (%s); %s takes the job", job, provider, exc, chain[index + 1]
            )
        except BaseException:
            if meter is not None:
                meter.release(expected)
            raise
    raise AssertionError("unreachable: the last provider creates the job or raises")


def describe(handle: RemoteJobHandle, state: str, since: str | None = None) -> list[str]:
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
    handle: RemoteJobHandle
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


def fetch(step: RemoteJobStep, results_file: str) -> FetchOutcome:
    """Collect the answers of the remote job of ``step`` into ``results_file`` once it is done
    (PendingJob while it runs, DeadJob when it died: the next run resubmits it)."""
    handle_file, settings, logger = step.handle_file, step.settings, step.logger
    layout = settings.layout
    meter = (step.meter or spending.meter(settings)).settled()
    handle = read_record(handle_file, RemoteJobHandle)
    batches: dict[str, PlannedBatch] = {}

    def planned(ref: RemoteBatch) -> PlannedBatch:
        if not batches:  # read once, when a batch is needed: not while the job is pending
            batches.update((b.fingerprint, b) for b in step.planned())
            if any(r.fingerprint not in batches for r in handle.batches):
                raise RuntimeError(
                    f"{handle_file} refers to batches that are no longer planned; rerun to resubmit"
                )
        return batches[ref.fingerprint]

    def state(status: RemoteStatus, remote: str, message: str = "") -> None:
        write_state(layout, handle.job, handle, status, remote, message)

    results: list[BatchResult] = []
    reserved = Decimal(str(handle.expected_cost_usd)) if handle.expected_cost_usd else None
    to_answer = [r for r in handle.batches if not r.cached]
    for ref in handle.batches:
        if ref.cached:
            cached = load_answer(layout, ref.fingerprint)
            if cached is None:
                raise RuntimeError(
                    f"cached answer for {ref.batch_id} vanished; delete {handle_file} and rerun"
                )
            results.append(cached.as_reused())
    meter.reused(len(handle.batches) - len(to_answer))
    remote = handle.state
    if to_answer and handle.state == "OVER_BUDGET":
        for ref in to_answer:
            batch = planned(ref)
            results.append(over_budget(batch, handle.provider, handle.model, handle.error))
    elif to_answer and handle.state == "ABANDONED":
        for ref in to_answer:
            results.append(_all_failed(planned(ref), handle, f"batch job abandoned: {handle.error}"))
    elif to_answer:
        backend = step.backend or backend_of(settings, handle.provider)
        assert handle.name is not None
        status = wait_for(backend, handle.name, settings.batch_wait_minutes, step.sleep)
        remote = status.state
        if remote in PENDING_STATES:
            message = "\n".join(describe(handle, remote, status.create_time))
            state("pending", remote, message)
            remote_ledger.mark(layout, handle, "live", remote)
            raise PendingJob(message)
        if remote in DEAD_STATES or remote != "SUCCEEDED":
            _record_death(layout, handle, remote, status.error)
            meter.release(reserved)
            Path(handle_file).unlink(missing_ok=True)
            attempts = read_attempts(layout, handle.job).attempt
            what = (
                f"the next run resubmits it (attempt {attempts} of {settings.max_job_attempts})"
                if attempts <= settings.max_job_attempts
                else "the next run marks its flags as failed (no attempts left)"
            )
            message = (
                "\n".join(describe(handle, remote, status.create_time))
                + f"\n{handle.job}: job {handle.name} ended {remote}"
                + (f" ({status.error})" if status.error else "")
                + f"; {what}."
            )
            state("dead", remote, message)
            dead = "cancelled" if remote in ("CANCELLED", "CANCELLING") else "dead"
            remote_ledger.mark(layout, handle, dead, remote, status.error)
            raise DeadJob(message)
        requests = [first_request(planned(r)) for r in to_answer]
        answers = backend.results(handle.name, requests)
        # Flags that failed or were invalid inside a finished job are asked again on their own,
        # synchronously, so a handful of flags never waits another batch cycle.
        retry_provider = backend.sync_provider
        seen = link_of(settings, handle.provider).rebatch  # the cache is per provider and model
        try:
            for ref in to_answer:
                batch = planned(ref)
                answer = answers.get(ref.fingerprint) or Answer(text=None, error=NO_RESPONSE)
                result = categorise_batch(
                    seen(batch),
                    retry_provider,
                    settings.max_retries,
                    logger=logger,
                    first_answer=answer,
                    meter=meter,
                )
                result.extra["job"] = handle.name
                results.append(result)
                if result.requests > 1:  # paid for on its own, not fetched again: cached at once
                    save_answer(layout, result)
        except BaseException:
            meter.settle()  # what was answered before the failure is paid for
            # no results file holds them: the answers checked so far go to the cache now
            save_answers_later(layout, (r for r in results if not r.reused and r.requests <= 1))
            raise
    meter.settle(reserved if to_answer else None)
    record = RemoteJobResults(
        job=handle.job,
        name=handle.name,
        state=remote,
        handle_created_at=handle.created_at,
        fetched_at=now_iso(),
        batches=results,
        spend=sum((r.spend() for r in results), Spend()),
    )
    # as a categorise job's results: checked when read, made again by a fetch (docs/DESIGN.md §27)
    write_record(results_file, record, durable=False)
    # the new answers into the cache once the file above holds them all, while this job ends and
    # its merges start; a process killed meanwhile leaves them to recover_answers (§7)
    save_answers_later(layout, (r for r in results if not r.reused and r.requests <= 1))
    state("completed", remote)
    remote_ledger.mark(layout, handle, "completed", remote)
    saved = sum(len(r.items) for r in results)
    logger.info("Saved %d result(s) to %s; %s", saved, results_file, record.spend.describe())
    return FetchOutcome(handle, results, remote)


def _all_failed(batch: PlannedBatch, handle: RemoteJobHandle, error: str) -> BatchResult:
    return BatchResult(
        batch_id=batch.batch_id,
        fingerprint=batch.fingerprint,
        provider=handle.provider,
        model=handle.model,
        items={flag.key: FlagResult(status="failed", error=error) for flag in batch.flags},
    )


def _record_death(layout: Layout, handle: RemoteJobHandle, state: str, error: str) -> None:
    attempts = read_attempts(layout, handle.job)
    attempts.history.append(
        DeadAttempt(attempt=handle.attempt, name=handle.name, state=state, error=error, at=now_iso())
    )
    attempts.attempt = handle.attempt + 1
    write_record(layout.attempts(handle.job), attempts)
