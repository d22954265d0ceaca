"""``triage.xlsx``: a summary sheet and one sheet per subject, through pandas and XlsxWriter.

XlsxWriter is told never to turn strings into formulas or links (a flag whose text starts with
``=`` stays text) and every sheet gets a frozen header row, an autofilter and column widths from
its content. A cell longer than Excel's 32,767-character limit is cut, and says so.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..categories import CATEGORY_NAMES
from ..outputs import COMBINED_COLUMNS
from .flags import Flag

SHEET_COLUMNS = tuple(c for c in COMBINED_COLUMNS if c not in {"subject", "issue_key"})
EXCEL_CELL_LIMIT = 32_767
_CUT_NOTE = " … [cut at Excel's cell limit; the full text is in the CSV]"
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
MIN_WIDTH, MAX_WIDTH = 8, 60


def sheet_names(subjects: Sequence[str]) -> dict[str, str]:
    """A valid, unique Excel sheet name (at most 31 characters, none of []:*?/\\) per subject."""
    names: dict[str, str] = {}
    used = {"summary"}
    for subject in subjects:
        base = _SHEET_FORBIDDEN.sub("_", subject).strip("'") or "subject"
        name, n = base[:31], 2
        while name.casefold() in used:
            suffix = f" ({n})"
            name, n = base[: 31 - len(suffix)] + suffix, n + 1
        used.add(name.casefold())
        names[subject] = name
    return names


def _cell(value: str) -> str:
    return value if len(value) <= EXCEL_CELL_LIMIT else value[: EXCEL_CELL_LIMIT - len(_CUT_NOTE)] + _CUT_NOTE


def _summary_fields(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Scalars of the run summary (and flat mappings, one line per entry), in file order."""
    fields: list[tuple[str, Any]] = []
    for key, value in summary.items():
        if isinstance(value, bool) or value is None:
            fields.append((key, "" if value is None else str(value).lower()))
        elif isinstance(value, int | float | str):
            fields.append((key, value))
        elif isinstance(value, Mapping) and key not in {"categories", "statuses", "subjects"}:
            for sub, item in value.items():
                if isinstance(item, int | float | str):
                    fields.append((f"{key}: {sub}", item))
    return fields


def _autofit(worksheet: Any, frame: Any) -> None:
    """Each column as wide as its header or its 90th-percentile value, within bounds."""
    for index, column in enumerate(frame.columns):
        lengths = sorted(len(str(v)) for v in frame[column].tolist())
        typical = lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0
        worksheet.set_column(index, index, min(max(len(str(column)) + 2, typical + 2, MIN_WIDTH), MAX_WIDTH))


def write_workbook(path: str | Path, flags: Sequence[Flag], summary: Mapping[str, Any]) -> None:
    import pandas as pd

    rows = [{c: getattr(f, c) for c in ("subject", *SHEET_COLUMNS)} for f in flags]
    frame = pd.DataFrame(rows, columns=["subject", *SHEET_COLUMNS])
    for column in frame.columns:
        if column != "confidence_score":
            frame[column] = frame[column].map(_cell)
    frame["confidence_score"] = frame["confidence_score"].astype("Int64")
    subjects = sorted(frame["subject"].unique())
    answered = frame[frame["status"].isin(["ok", "repaired"]) & (frame["error_category"] != "")]
    by_category = pd.crosstab(answered["subject"], answered["error_category"]).reindex(
        index=subjects,
        columns=[c for c in CATEGORY_NAMES if c in set(answered["error_category"])],
        fill_value=0,
    )
    by_category["total"] = by_category.sum(axis=1)
    by_status = pd.crosstab(frame["subject"], frame["status"]).reindex(index=subjects, fill_value=0)
    run = pd.DataFrame(_summary_fields(summary), columns=["run summary", "value"])

    buffer = io.BytesIO()
    options = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
    with pd.ExcelWriter(buffer, engine="xlsxwriter", engine_kwargs={"options": options}) as writer:
        bold = writer.book.add_format({"bold": True})
        sheet = "Summary"
        row = 0
        for title, table in (("Categories by subject", by_category), ("Status by subject", by_status)):
            table = table.reset_index()
            table.columns.name = None
            table.to_excel(writer, sheet_name=sheet, startrow=row + 1, index=False)
            writer.sheets[sheet].write(row, 0, title, bold)
            row += len(table) + 3
        writer.sheets[sheet].write(row, 0, "Run", bold)
        run.to_excel(writer, sheet_name=sheet, startrow=row + 1, index=False)
        summary_sheet = writer.sheets[sheet]
        summary_sheet.set_column(0, 0, max(24, *(len(s) + 2 for s in subjects)) if subjects else 24)
        summary_sheet.set_column(1, len(CATEGORY_NAMES) + 1, 16)
        summary_sheet.freeze_panes(0, 1)
        for subject, name in sheet_names(subjects).items():
            part = frame[frame["subject"] == subject].drop(columns=["subject"])
            part.to_excel(writer, sheet_name=name, index=False)
            worksheet = writer.sheets[name]
            worksheet.freeze_panes(1, 0)
            worksheet.autofilter(0, 0, len(part), len(part.columns) - 1)
            _autofit(worksheet, part)
    atomic_write_bytes(path, buffer.getvalue())
