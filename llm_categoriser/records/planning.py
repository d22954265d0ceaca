"""Records of the plan (``<data_dir>/plan/``): batches, manifests, job specs, the plan summary."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from ..atomic import dumps_json
from ..models import Issue, ReportedFlag
from .base import Record, fingerprint

PLAN_FORMAT = 2


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
    """One batch of ``plan/<subject>/<document>/batches.json``: everything one request depends on."""

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

    def stamp(self) -> dict[str, Any]:
        """Set ``fingerprint`` (``request_fingerprint``) and return the record as it is dumped
        (``model_dump(mode="json")``), both from one dump: planning does this for every batch at
        every re-plan, and writes the dumps of a document's batches as its ``PlannedBatches``."""
        data = self.model_dump(mode="json")
        del data["fingerprint"]  # the last field: put back below, the dump keeps its order
        self.fingerprint = data["fingerprint"] = fingerprint(data)
        return data


class PlannedBatches(Record):
    """``plan/<subject>/<document>/batches.json``: the planned batches of one document, in order.

    One file per document, written by the process that plans the document and only when one
    of its batches changed. Not a rule input: the job spec lists the fingerprint of each batch
    a job sends (docs/DESIGN.md §9, §12).
    """

    fix: ClassVar[str] = PlannedBatch.fix
    format: int = PLAN_FORMAT
    subject: str
    document: str
    batches: list[PlannedBatch]

    @staticmethod
    def text(subject: str, document: str, stamped: list[dict[str, Any]]) -> str:
        """The file's text from the ``PlannedBatch.stamp`` of each batch (as ``record_json``
        writes the record), without dumping the batches again."""
        data = {"format": PLAN_FORMAT, "subject": subject, "document": document, "batches": stamped}
        return dumps_json(data)


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
    packing: str | None = Field(None, description="the settings the batches were packed with")


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
    the only input of the sync categorise job (one file per job keeps the DAG small), which
    reads the batches from the ``PlannedBatches`` of their documents.
    """

    fix: ClassVar[str] = PlannedBatch.fix
    job: str
    batches: list[tuple[str, str, str]] = Field(description="(subject, document, batch id)")
    fingerprints: list[str] = Field(default_factory=list, description="of each batch, in order")
