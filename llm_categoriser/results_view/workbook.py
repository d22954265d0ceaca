"""``triage.xlsx``: a summary sheet and one sheet per subject, written with XlsxWriter.

XlsxWriter is told never to turn strings into formulas or links (a flag whose text starts with
``=`` stays text) and every sheet gets a frozen header row, an autofilter and column widths from
its content. A cell longer than Excel's 32,767-character limit is cut, and says so.

The cells are written column by column, without a pandas frame, by ``table_sheet.TableSheet``
(whole columns at once, the same bytes as XlsxWriter's typed call per cell): the same workbook as
``DataFrame.to_excel`` made, in a fraction of the time (docs/DESIGN.md §28).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_write_bytes
from ..categories import CATEGORY_NAMES
from ..outputs import COMBINED_COLUMNS
from .flags import ANSWERED, Flag

if TYPE_CHECKING:
    from .table_sheet import TableSheet

SHEET_COLUMNS = tuple(c for c in COMBINED_COLUMNS if c not in {"subject", "issue_key"})
EXCEL_CELL_LIMIT = 32_767
_CUT_NOTE = " … [cut at Excel's cell limit; the full text is in the CSV]"
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
MIN_WIDTH, MAX_WIDTH = 8, 60
OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}

Cell = str | int | float | None
Table = tuple[list[str], list[list[Cell]]]  # header, then the columns' values


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


def _text_column(rows: Sequence[Flag], column: str) -> list[Cell]:
    values: list[Cell] = [getattr(f, column) for f in rows]
    if max(map(len, values), default=0) > EXCEL_CELL_LIMIT:  # type: ignore[arg-type]
        values = [_cell(v) for v in values]  # type: ignore[arg-type]
    return values


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


def _write_table(worksheet: TableSheet, table: Table, first_row: int = 0) -> None:
    """A header row, then the columns one after another (the order of the shared strings); an
    empty string or None is a blank cell."""
    header, columns = table
    for col, name in enumerate(header):
        worksheet.write_string(first_row, col, name)
    for col, values in enumerate(columns):
        worksheet.write_column(first_row + 1, col, values)


def _autofit(worksheet: Any, table: Table) -> None:
    """Each column as wide as its header or its 90th-percentile value, within bounds."""
    header, columns = table
    for index, (name, values) in enumerate(zip(header, columns, strict=True)):
        try:  # a column of text: its lengths straight away
            lengths = sorted(map(len, values))  # type: ignore[arg-type]
        except TypeError:  # numbers or blanks among them
            lengths = sorted(map(_width, values))
        typical = lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0
        worksheet.set_column(index, index, min(max(len(name) + 2, typical + 2, MIN_WIDTH), MAX_WIDTH))


def _width(value: Cell) -> int:
    return len(value) if isinstance(value, str) else len("<NA>" if value is None else str(value))


def _counts(rows: list[str], columns: list[str], pairs: Counter[tuple[str, str]]) -> list[list[Cell]]:
    return [list(rows)] + [[pairs[(row, column)] for row in rows] for column in columns]


def summary_tables(flags: Sequence[Flag], subjects: list[str]) -> tuple[Table, Table]:
    """Categories by subject (answered flags, with a total) and status by subject."""
    answered = [f for f in flags if f.status in ANSWERED and f.error_category]
    present = {f.error_category for f in answered}
    categories = [c for c in CATEGORY_NAMES if c in present]
    by_category = _counts(subjects, categories, Counter((f.subject, f.error_category) for f in answered))
    by_category.append([sum(column[i] for column in by_category[1:]) for i in range(len(subjects))])
    statuses = sorted({f.status for f in flags})
    by_status = _counts(subjects, statuses, Counter((f.subject, f.status) for f in flags))
    return (["subject", *categories, "total"], by_category), (["subject", *statuses], by_status)


def write_workbook(path: str | Path, flags: Sequence[Flag], summary: Mapping[str, Any]) -> None:
    import xlsxwriter

    from .table_sheet import TableSheet

    subjects = sorted({f.subject for f in flags})
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, OPTIONS)
    bold = book.add_format({"bold": True})
    sheet = book.add_worksheet("Summary", TableSheet)
    row = 0
    for title, table in zip(
        ("Categories by subject", "Status by subject"), summary_tables(flags, subjects), strict=True
    ):
        _write_table(sheet, table, row + 1)
        sheet.write_string(row, 0, title, bold)
        row += len(subjects) + 3
    sheet.write_string(row, 0, "Run", bold)
    fields = _summary_fields(summary)
    _write_table(sheet, (["run summary", "value"], [[k for k, _ in fields], [v for _, v in fields]]), row + 1)
    sheet.set_column(0, 0, max(24, *(len(s) + 2 for s in subjects)) if subjects else 24)
    sheet.set_column(1, len(CATEGORY_NAMES) + 1, 16)
    sheet.freeze_panes(0, 1)
    by_subject: dict[str, list[Flag]] = {s: [] for s in subjects}
    for flag in flags:
        by_subject[flag.subject].append(flag)
    for subject, name in sheet_names(subjects).items():
        rows = by_subject[subject]
        columns: list[list[Cell]] = [
            [f.confidence_score for f in rows] if column == "confidence_score" else _text_column(rows, column)
            for column in SHEET_COLUMNS
        ]
        table: Table = (list(SHEET_COLUMNS), columns)
        worksheet = book.add_worksheet(name, TableSheet)
        _write_table(worksheet, table)
        worksheet.freeze_panes(1, 0)
        worksheet.autofilter(0, 0, len(rows), len(SHEET_COLUMNS) - 1)
        _autofit(worksheet, table)
    book.close()
    atomic_write_bytes(path, buffer.getvalue())
