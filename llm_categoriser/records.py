"""Typed records of every file the pipeline writes and reads back (docs/DESIGN.md §4).

Each file under ``data/`` and each output the pipeline reads again has one pydantic model
here; ``read_record`` reads a file into its model and turns a file of an older or foreign
shape into a ``RecordError`` that names the file and what to do, never a ``KeyError``.
Where the files live: ``layout.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .atomic import atomic_write_text, dumps_json, write_if_changed
from .costs.usage import RunSpend, Spend, TokenUsage
from .errors import CategoriserError
from .models import Issue, ReportedFlag

PLAN_FORMAT = 2

FlagStatus = Literal["ok", "repaired", "failed", "missing", "over_budget"]


class RecordError(CategoriserError):
    """A file the pipeline wrote has a shape this version does not read."""


class Record(BaseModel):
    """A file's content; ``fix`` says what to do when an old or foreign file is found."""

    model_config = ConfigDict(extra="forbid")
    fix: ClassVar[str] = "delete it and run again"


# --------------------------------------------------------------------------
# The plan (<data_dir>/plan/)
# --------------------------------------------------------------------------


class FlagFields(Record, ReportedFlag):
    """What the report says about one flag (one row of the LanguageTool report), and its key."""

    key: str
    highlighted_context: str = ""

    @classmethod
    def fields_of(cls, issue: Issue) -> dict[str, object]:
        return {"key": issue.key, "highlighted_context": issue.context, **issue.reported()}


class PlannedFlag(FlagFields):
    """A flag inside a planned batch: its number in the request and the page sent with it."""

    local_id: int
    context_page: int | None = None
    hints: dict[str, Any] = Field(default_factory=dict, description="provider hints from the plan")


class PageText(Record):
    page: int | None
    text: str
    cut: bool = False


class PlannedBatch(Record):
    """``plan/<subject>/<document>/batches/<batch>.json``: everything one request depends on."""

    fix: ClassVar[str] = "delete the data/plan folder and run again (it is rebuilt from the report)"
    format: int = PLAN_FORMAT
    subject: str
    filename: str
    document: str
    batch_id: str
    settings: dict[str, Any]
    max_cell_chars: int
    flags: list[PlannedFlag]
    pages: list[PageText]
    fingerprint: str = ""

    def request_fingerprint(self) -> str:
        """The digest of everything but the fingerprint itself."""
        return fingerprint(self.model_dump(mode="json", exclude={"fingerprint"}))


class ManifestFlag(FlagFields):
    """A flag in its document's manifest: its row number in the CSV and its batch."""

    issue_id: int
    batch_id: str


class Manifest(Record):
    """``plan/<subject>/<document>/manifest.json``: a document's flags and batches.

    It lists every batch's fingerprint, so it changes whenever a batch does (an input of the
    merge rule, with the results of the jobs that carry its batches).
    """

    fix: ClassVar[str] = PlannedBatch.fix
    subject: str
    filename: str
    document: str
    batches: list[str]
    fingerprints: dict[str, str]
    flags: list[ManifestFlag]
    cascade_batch: str | None = Field(None, description="batch id of the flags answered locally")


class RequestSize(Record):
    """The first request of one planned batch, as the estimate before a run counts it."""

    fingerprint: str
    prompt_chars: int = Field(description="system part plus the rendered user part")
    flags: int


class DocumentPlan(Record):
    subject: str
    filename: str
    document: str
    batch_ids: list[str]
    fingerprints: list[str] = Field(default_factory=list, description="of each batch, in order")
    flags: int = 0
    cascaded: int = Field(0, description="flags answered locally by the cascade")
    requests: list[RequestSize] = Field(default_factory=list, description="one per batch, in order")


class SkippedDocument(Record):
    document: str
    issues: int
    reason: str


class SkippedRow(Record):
    row: int
    line: int = 0
    reason: str


class ReportDocument(Record):
    """A document of the report, and whether the subjects/documents filters selected it."""

    subject: str
    document: str
    selected: bool


class PlanSummary(Record):
    """``plan/plan.json``: the documents planned, and what was skipped or warned about."""

    fix: ClassVar[str] = PlannedBatch.fix
    format: int = PLAN_FORMAT
    documents: list[DocumentPlan]
    skipped_documents: list[SkippedDocument]
    skipped_rows: list[SkippedRow]
    warnings: list[str]
    report: str
    report_documents: list[ReportDocument] = Field(
        default_factory=list, description="a filtered run: every document of the report, in order"
    )


class PlanStamp(Record):
    """``plan/stamp.json``: what the plan was made from (settings, code, report, Markdown)."""

    key: str
    files: dict[str, list[int] | None]


class BatchLocation(BaseModel):
    subject: str
    document: str
    batch_id: str


class JobSpec(Record):
    """``plan/jobs/<job>.json``: the batches of one job (a categorise job, or a remote job).

    It lists every batch's fingerprint, so it changes whenever one of its batches does: it is
    the only input of the sync categorise job (one file per job keeps the DAG small).
    """

    fix: ClassVar[str] = PlannedBatch.fix
    job: str
    batches: list[tuple[str, str, str]] = Field(description="(subject, document, batch id)")
    fingerprints: list[str] = Field(default_factory=list, description="of each batch, in order")


# --------------------------------------------------------------------------
# Answers and results
# --------------------------------------------------------------------------


class FlagResult(Record):
    """The validated answer for one flag, or why there is none."""

    status: FlagStatus
    error_category: str = ""
    confidence_score: int | None = None
    reasoning: str = ""
    error: str = ""
    attempts: int = 0
    notes: list[str] = Field(default_factory=list)


class BatchResult(Record):
    """The answers for one batch; also the cached answer (``cache/<xx>/<fingerprint>.json``).

    ``requests``, the token counts and ``cost_usd`` are what was sent to get these answers, as
    the provider reported it (``cost_usd`` None: no price known). A result answered from the
    cache is ``reused``: it counts no request, no token and no cost.
    """

    batch_id: str
    fingerprint: str
    provider: str
    model: str
    items: dict[str, FlagResult]
    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float | None = 0.0
    reused: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)

    def spend(self) -> Spend:
        if self.reused:
            return Spend(requests_reused=1)
        return Spend(
            requests_sent=self.requests,
            usage=TokenUsage(
                input_tokens=self.input_tokens,
                cached_tokens=self.cached_tokens,
                output_tokens=self.output_tokens,
                thinking_tokens=self.thinking_tokens,
            ),
            cost_usd=self.cost_usd,
            unpriced_requests=self.requests if self.cost_usd is None else 0,
        )

    def as_reused(self) -> BatchResult:
        """This answer taken from the cache: nothing sent, nothing spent."""
        return self.model_copy(
            update={
                "requests": 0,
                "input_tokens": 0,
                "cached_tokens": 0,
                "output_tokens": 0,
                "thinking_tokens": 0,
                "cost_usd": 0.0,
                "reused": True,
            }
        )


class ResultSet(Record):
    """What merge reads from a part result or a remote job's results: the batches."""

    model_config = ConfigDict(extra="ignore")
    fix: ClassVar[str] = "delete it (or the data/results and data/jobs folders) and run again"
    batches: list[BatchResult]


class JobResult(ResultSet):
    """``results/<job>.json``: one sync categorise job's answers."""

    model_config = ConfigDict(extra="forbid")
    job: str


class CascadeAnswer(Record):
    key: str
    category: str
    probability: float
    audit: bool = Field(False, description="also sent to the provider (cascade_audit)")


class CascadeSpec(Record):
    """``plan/<subject>/<document>/cascade.json``: the flags the cascade answers, and its model."""

    fix: ClassVar[str] = PlannedBatch.fix
    model: str
    trained_on: int
    answers: list[CascadeAnswer]


class CascadeResult(ResultSet):
    """``results/<subject>/<document>/cascade.json``: the cascade's answers for one document."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------
# Remote jobs (<data_dir>/jobs/<job>/)
# --------------------------------------------------------------------------

RemoteStatus = Literal["pending", "completed", "dead", "error"]


class RemoteBatch(Record):
    subject: str
    document: str
    batch_id: str
    index: int = Field(description="position of the batch in its document")
    fingerprint: str
    flag_keys: list[str]
    cached: bool = False


class RemoteJobHandle(Record):
    """``handle.json`` (the submit rule's output): the remote job and what it carries."""

    fix: ClassVar[str] = "delete the job's folder under data/jobs and run again (it is resubmitted)"
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
    expected_cost_usd: float | None = Field(default=None, description="the estimate reserved at submission")
    batches: list[RemoteBatch]


class DeadAttempt(Record):
    attempt: int
    name: str | None
    state: str
    error: str = ""
    at: str


class RemoteJobAttempts(Record):
    """``attempts.json``: how many times the job died (FAILED, EXPIRED, CANCELLED)."""

    fix: ClassVar[str] = RemoteJobHandle.fix
    attempt: int = 1
    history: list[DeadAttempt] = Field(default_factory=list)


class RemoteJobState(Record):
    """``state.json``: what the last submit or fetch of the job found, for the CLI.

    ``handle_created_at`` ties it to one handle: a state written for an earlier submission
    is stale once the job is resubmitted.
    """

    fix: ClassVar[str] = RemoteJobHandle.fix
    job: str
    status: RemoteStatus
    state: str = ""
    name: str | None = None
    handle_created_at: str = ""
    message: str = ""
    error_type: str = ""
    checked_at: float = Field(description="seconds since the epoch")


class RemoteJobResults(ResultSet):
    """``results.json`` (the fetch rule's output): the answers of every batch of the job."""

    model_config = ConfigDict(extra="forbid")
    fix: ClassVar[str] = RemoteJobHandle.fix
    job: str
    name: str | None
    state: str
    handle_created_at: str = ""
    fetched_at: str
    spend: Spend = Field(default_factory=Spend, description="what the job and its follow-ups cost")


LedgerStatus = Literal["live", "completed", "dead", "superseded", "cancelled"]


class JobProgress(Record):
    """How many of a remote job's requests its provider reports done."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0


class LedgerJob(Record):
    """``ledger/<provider>/<name>.json``: one remote batch job, from its creation to its end.

    ``status``: ``live`` (carries batches of the plan; fetch it), ``completed`` (fetched),
    ``dead`` (FAILED or EXPIRED), ``cancelled`` (by ``batch-cancel``), ``superseded`` (its job
    id was submitted again with other content, and it was cancelled then).
    """

    fix: ClassVar[str] = (
        "it records a remote job: if it is damaged, cancel that job in the provider's console "
        "and delete the file"
    )
    provider: str
    name: str = Field(description="the provider's name of the job, e.g. batches/abc123")
    job: str = Field(description="the plan's job id that submitted it")
    display_name: str = ""
    model: str
    settings: dict[str, Any] = Field(description="the run settings the job was created with")
    batches: list[RemoteBatch]
    created_at: str
    adopted: bool = False
    status: LedgerStatus = "live"
    state: str = "PENDING"
    checked_at: str = ""
    progress: JobProgress | None = None
    note: str = ""


# --------------------------------------------------------------------------
# Outputs read back
# --------------------------------------------------------------------------


class DocumentStats(Record):
    """``merged/<subject>/<document>.json``: the counts of one document's CSV."""

    subject: str
    filename: str
    csv: str
    issues: int
    batches: int
    categories: dict[str, int]
    statuses: dict[str, int]
    spend: Spend = Field(description="requests sent and reused for the answers in this CSV")
    providers: list[str]
    answers_by_provider: dict[str, int] = Field(
        default_factory=dict, description="flags answered (ok or repaired) per provider"
    )
    cascaded: int = 0
    audited: int = 0
    audit_agreed: int = 0


class RunSummary(Record):
    """``run-summary.json``: counts per category, subject and status; cost; what was skipped."""

    documents: int
    issues: int
    batches: int
    categories: dict[str, int]
    statuses: dict[str, int]
    subjects: dict[str, int]
    spend: Spend = Field(description="requests sent and reused for the answers in this report")
    this_run: RunSpend = Field(description="what the run that wrote this summary sent and spent")
    answers_by_provider: dict[str, int] = Field(
        default_factory=dict, description="flags answered (ok or repaired) per provider"
    )
    cascaded: int = Field(0, description="flags answered locally by the cascade (no request)")
    audited: int = Field(0, description="of those, also sent to the provider (cascade_audit)")
    audit_agreed: int = Field(0, description="audited flags where the provider gave the same category")
    skipped_documents: list[SkippedDocument]
    skipped_rows: list[SkippedRow]
    warnings: list[str]
    document_reports: list[str]
    combined_report: str
    # the run that wrote this summary: when its workflow started (UTC, ISO 8601) and when the
    # summary was written, and the time in between in seconds; None when not known
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None


# --------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------

R = TypeVar("R", bound=Record)


def fingerprint(payload: Any) -> str:
    """A digest of ``payload`` as canonical JSON."""
    canonical = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"


def parse_record(data: Any, model: type[R], source: str | os.PathLike[str]) -> R:
    """``data`` as ``model``; RecordError naming ``source`` when it has another shape."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        what = (model.__doc__ or model.__name__).strip().splitlines()[0]
        raise RecordError(
            f"{source} is not a {model.__name__} of this version ({_describe(exc)}; expected: {what}). "
            f"It was written by an older or another version: {model.fix}."
        ) from None


def read_record(path: str | os.PathLike[str], model: type[R]) -> R:
    """The record in ``path``; FileNotFoundError if absent, RecordError if of another shape."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{path} is not valid JSON ({exc}): {model.fix}.") from None
    return parse_record(data, model, path)


def record_json(record: BaseModel, indent: int | None = None) -> str:
    data = record.model_dump(mode="json")
    if indent is None:
        return dumps_json(data)
    return json.dumps(data, ensure_ascii=False, indent=indent) + "\n"


def write_record(
    path: str | os.PathLike[str], record: BaseModel, durable: bool = True, indent: int | None = None
) -> None:
    """Write ``record`` atomically (``durable``: see ``atomic.py``; ``indent`` for files people read)."""
    atomic_write_text(path, record_json(record, indent), durable)


def write_record_if_changed(path: str | os.PathLike[str], record: BaseModel, durable: bool = True) -> bool:
    """Write ``record`` unless the file already holds it (its modification time then stays)."""
    return write_if_changed(path, record_json(record), durable)
