"""The flags of a run as the results view reads them: rows of the combined CSV, and the run summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from ..errors import ReportError
from ..models import document_stem
from ..outputs import iter_csv

ANSWERED = frozenset({"ok", "repaired"})


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="ignore"))
class Flag:
    """One row of ``combined-report.csv`` (extra columns are ignored).

    A validated dataclass with slots rather than a model: a large run's view holds every flag,
    and a model instance costs several times the memory of its values (docs/DESIGN.md §28)."""

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


# columns whose few values repeat on every row: one string object each, not one per row
_REPEATED = ("subject", "filename", "page_number", "pass_code", "error_category", "rule_id", "type")
_REPEATED += ("provider", "model", "status")


_FLAG = TypeAdapter(Flag)


def load_flags(combined_csv: str | Path) -> list[Flag]:
    """Every row of the combined CSV; ReportError naming the file and row when one is unusable.

    The rows are read one at a time and their repeated values shared, so that the flags of a
    large run, not a copy of every row besides, are what the view holds (docs/DESIGN.md §28)."""
    flags = []
    try:
        for number, row in enumerate(iter_csv(combined_csv), start=2):
            for column in _REPEATED:
                if column in row:
                    row[column] = sys.intern(row[column])
            try:
                flags.append(_FLAG.validate_python(row))
            except ValidationError as exc:
                problem = exc.errors()[0]
                field = ".".join(str(p) for p in problem["loc"])
                raise ReportError(
                    f"{combined_csv} line {number}: column {field!r}: {problem['msg']}; "
                    f"rebuild it with --forcerun combine"
                ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(
            f"{combined_csv}: cannot read the combined CSV ({exc}); rerun the pipeline"
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
