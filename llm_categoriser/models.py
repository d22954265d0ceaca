"""Data that crosses a boundary: report rows, planned batches, answers and results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_COLUMNS: tuple[str, ...] = (
    "Subject",
    "Filename",
    "Page",
    "Rule ID",
    "Type",
    "Issue",
    "Message",
    "Suggestions",
    "Highlighted Context",
    "Pass Code",
)
REQUIRED_COLUMNS: tuple[str, ...] = REPORT_COLUMNS[:-1]  # Pass Code may be missing


class Issue(BaseModel):
    """One LanguageTool flag from the report, with its stable identity."""

    model_config = ConfigDict(frozen=True)

    subject: str
    filename: str
    page: int | None = None
    rule_id: str = ""
    type: str = ""
    issue: str = ""
    message: str = ""
    suggestions: str = ""
    context: str = ""
    pass_code: str = ""
    row: int = Field(description="1-based data row of the report (header excluded)")
    occurrence: int = 0
    key: str = ""

    @property
    def document(self) -> str:
        return document_stem(self.filename)


def document_stem(filename: str) -> str:
    return filename[:-3] if filename.lower().endswith(".md") else filename


class Verdict(BaseModel):
    """A validated answer for one issue."""

    error_category: str
    confidence_score: int = Field(ge=0, le=100)
    reasoning: str


Status = Literal["ok", "repaired", "failed", "missing"]


class IssueResult(BaseModel):
    status: Status
    error_category: str = ""
    confidence_score: int | None = None
    reasoning: str = ""
    error: str = ""
    attempts: int = 0
    notes: list[str] = Field(default_factory=list)


class BatchResult(BaseModel):
    """What the categorise/fetch step writes for one batch."""

    batch_id: str
    fingerprint: str
    provider: str
    model: str
    items: dict[str, IssueResult]
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    extra: dict[str, Any] = Field(default_factory=dict)
