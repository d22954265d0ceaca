"""Load the LanguageTool report into Issues, with clear errors for bad input.

Errors that make the whole report unusable (missing file, not UTF-8, missing or repeated
columns, no header, broken quoting) raise ReportError with the file, the line and the fix.
Problems confined to one row (an unsafe Subject/Filename, a page that is not a number) are
logged and the row is either skipped (unsafe names) or kept with no page (bad page numbers):
a flag is never dropped without a line in the log and the run summary.

Quoting is parsed strictly: a stray quote that is never closed would otherwise swallow every
following row into one cell, silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .encoding import decode_utf8
from .errors import ReportError, UnsafePathError
from .models import REPORT_COLUMNS, REQUIRED_COLUMNS, Issue
from .paths import check_name
from .records import SkippedRow

log = logging.getLogger(__name__)

# A cell may legitimately be large (a whole table row in a context); the csv module's
# default limit of 128 KiB would make such a report unreadable.
csv.field_size_limit(64 * 1024 * 1024)


@dataclass
class LoadedReport:
    path: Path
    issues: list[Issue]
    skipped: list[SkippedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def issue_key(subject: str, filename: str, rule_id: str, text: str, context: str, occurrence: int) -> str:
    """Stable identity of a flag: its content, not its row position (docs/DESIGN.md §8)."""
    raw = "\x1f".join((subject, filename, rule_id, text, context, str(occurrence)))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:20]


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReportError(
            f"{path}: report not found. Run LanguageTool first, or point `report` "
            f"(config.yaml or --config report=PATH) at the CSV."
        ) from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the report ({exc.strerror}).") from None
    text, bad = decode_utf8(data)
    if bad is not None:
        raise ReportError(
            f"{path}: not UTF-8 ({bad.describe()}). "
            f"Re-save the report as UTF-8, e.g. `iconv -f latin1 -t utf-8`."
        )
    return text


def _parse_page(raw: str) -> int | None:
    text = raw.strip()
    if not text:
        return None
    if text.endswith(".0"):
        text = text[:-2]
    if not text.isdigit():
        raise ValueError(raw)
    return int(text)


def load_report(path: str | Path) -> LoadedReport:
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise ReportError(
            f"{path}: the report is empty. Expected a header line with the columns "
            f"{', '.join(REPORT_COLUMNS)}."
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise ReportError(f"{path}: line 1: cannot parse the header ({exc}).") from None
    names = [h.strip().lstrip("\ufeff") for h in header]
    index: dict[str, int] = {}
    lowered: dict[str, int] = {}
    for i, name in enumerate(names):
        if name.lower() in lowered and name.lower() in {c.lower() for c in REPORT_COLUMNS}:
            raise ReportError(
                f"{path}: line 1: column {name!r} appears more than once. Keep one column of "
                f"each name ({', '.join(REPORT_COLUMNS)})."
            )
        lowered.setdefault(name.lower(), i)
    for column in REPORT_COLUMNS:
        if column.lower() in lowered:
            index[column] = lowered[column.lower()]
    missing = [c for c in REQUIRED_COLUMNS if c not in index]
    if missing:
        raise ReportError(
            f"{path}: line 1: missing column(s) {', '.join(missing)}. Found: "
            f"{', '.join(n[:40] for n in names[:20]) or '(none)'}. The header must name "
            f"{', '.join(REPORT_COLUMNS)} (Pass Code optional)."
        )

    report = LoadedReport(path=path, issues=[])
    seen: dict[tuple[str, ...], int] = {}
    safe: set[tuple[str, str]] = set()  # (Subject, Filename) pairs already checked: rows repeat them
    row_number = 0
    while True:
        line = reader.line_num + 1  # where this record starts (a quoted cell may span lines)
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "field limit" in str(exc):
                hint = "a cell is larger than 64 MB"
            elif "unexpected end of data" in str(exc):
                hint = "a quoted cell opened on that line is never closed"
            elif reader.line_num > line:
                hint = f"a quoted cell opened on that line runs on to line {reader.line_num}; is it closed?"
            else:
                hint = "a quote inside an unquoted cell, or text after a closing quote"
            raise ReportError(
                f"{path}: line {line}: malformed CSV ({exc}: {hint}). Fix the quoting of that row "
                f"(a cell holding quotes, commas or line breaks must be quoted, with inner quotes "
                f'doubled: "").'
            ) from None
        row_number += 1
        if not any(c.strip() for c in cells):
            continue

        def cell(column: str, cells: list[str] = cells) -> str:
            i = index.get(column)
            return cells[i] if i is not None and i < len(cells) else ""

        subject, filename = cell("Subject").strip(), cell("Filename").strip()
        try:
            if (subject, filename) not in safe:
                check_name(subject, "Subject")
                check_name(filename, "Filename")
                safe.add((subject, filename))
        except UnsafePathError as exc:
            reason = (
                f"{exc}; row skipped. Subject and Filename must be a plain folder name and file name "
                f"(no '/', '\\', '..', braces or control characters): correct the row and rerun"
            )
            report.skipped.append(SkippedRow(row=row_number, reason=reason, line=line))
            log.warning("%s: row %d (line %d): %s", path, row_number, line, reason)
            continue
        try:
            page = _parse_page(cell("Page"))
        except ValueError:
            page = None
            message = (
                f"{path}: row {row_number} (line {line}): page {cell('Page')[:40]!r} is not "
                f"a non-negative whole number; the flag is kept and its page found from its context"
            )
            report.warnings.append(message)
        rule_id, issue_text, context = cell("Rule ID"), cell("Issue"), cell("Highlighted Context")
        ident = (subject, filename, rule_id, issue_text, context)
        occurrence = seen.get(ident, 0)
        seen[ident] = occurrence + 1
        report.issues.append(
            Issue(
                subject=subject,
                filename=filename,
                page=page,
                rule_id=rule_id,
                type=cell("Type"),
                issue=issue_text,
                message=cell("Message"),
                suggestions=cell("Suggestions"),
                context=context,
                pass_code=cell("Pass Code").strip(),
                row=row_number,
                occurrence=occurrence,
                key=issue_key(subject, filename, rule_id, issue_text, context, occurrence),
            )
        )
    if not report.issues and not report.skipped:
        report.warnings.append(f"{path}: the report has a header but no rows; nothing to categorise")
    return report
