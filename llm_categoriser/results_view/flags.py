"""The flags of a run as the results view reads them: rows of the combined CSV, and the run summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..errors import ReportError
from ..models import document_stem
from ..outputs import read_csv

ANSWERED = frozenset({"ok", "repaired"})


class Flag(BaseModel):
    """One row of ``combined-report.csv`` (extra columns are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    subject: str
    filename: str
    issue_id: str = ""
    page_number: str = ""
    issue: str = ""
    highlighted_context: str = ""
    pass_code: str = ""
    error_category: str = ""
    confidence_score: int | None = None
    reasoning: str = ""
    rule_id: str = ""
    type: str = ""
    message: str = ""
    suggestions: str = ""
    provider: str = ""
    model: str = ""
    status: str = ""
    error: str = ""

    @field_validator("confidence_score", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    @property
    def document(self) -> str:
        return document_stem(self.filename)

    @property
    def answered(self) -> bool:
        return self.status in ANSWERED and bool(self.error_category)


def load_flags(combined_csv: str | Path) -> list[Flag]:
    """Every row of the combined CSV; ReportError naming the file and row when one is unusable."""
    flags = []
    try:
        rows = read_csv(combined_csv)
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(
            f"{combined_csv}: cannot read the combined CSV ({exc}); rerun the pipeline"
        ) from None
    for number, row in enumerate(rows, start=2):
        try:
            flags.append(Flag.model_validate(row))
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem["loc"])
            raise ReportError(
                f"{combined_csv} line {number}: column {field!r}: {problem['msg']}; "
                f"rebuild it with --forcerun combine"
            ) from None
    return flags


def load_summary(summary_json: str | Path) -> dict[str, Any]:
    """The run summary as a plain mapping: the view shows whatever fields it holds."""
    try:
        with open(summary_json, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ReportError(
            f"{summary_json}: cannot read the run summary ({exc}); rerun the pipeline"
        ) from None
    if not isinstance(data, dict):
        raise ReportError(f"{summary_json}: the run summary is not a JSON object; rerun the pipeline")
    return data
