"""A flag as the LanguageTool report gives it, and a validated answer for one flag.

The files the pipeline writes are in ``records/``.
"""

from __future__ import annotations

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


class ReportedFlag(BaseModel):
    """What the report says about a flag, besides its document and its highlighted context."""

    page: int | None = None
    rule_id: str = ""
    type: str = ""
    issue: str = ""
    message: str = ""
    suggestions: str = ""
    pass_code: str = ""

    def reported(self) -> dict[str, object]:
        """These fields, to build another record that has them."""
        return {name: getattr(self, name) for name in ReportedFlag.model_fields}


class Issue(ReportedFlag):
    """One flag (a row of the LanguageTool report), with its stable identity."""

    model_config = ConfigDict(frozen=True)

    subject: str
    filename: str
    context: str = ""
    row: int = Field(description="1-based data row of the report (header excluded)")
    occurrence: int = 0
    key: str = ""

    @property
    def document(self) -> str:
        return document_stem(self.filename)


def document_stem(filename: str) -> str:
    return filename[:-3] if filename.lower().endswith(".md") else filename


class Verdict(BaseModel):
    """A validated answer for one flag."""

    error_category: str
    confidence_score: int = Field(ge=0, le=100)
    reasoning: str
