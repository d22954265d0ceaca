"""Records of outputs the pipeline reads back: document statistics, merge records and the run summary."""

from __future__ import annotations

from pydantic import Field

from ..costs.usage import RunSpend, Spend
from .base import Record
from .planning import SkippedDocument, SkippedRow


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


class MergedDocument(Record):
    """One document a merge job wrote: its manifest, the results it read, its CSV and statistics."""

    manifest: str
    results: list[str]
    csv: str
    stats: str


class MergedJob(Record):
    """``merge/<job>.json``: what one merge job wrote (docs/DESIGN.md §12)."""

    job: str
    documents: list[MergedDocument]
    rewritten: list[str] = Field(description="the CSVs whose content changed")
