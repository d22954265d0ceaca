"""Per-document CSVs, the combined CSV and the run summary.

The first eight columns stay compatible with the earlier tool (plain values such as ``LTC``,
``FALSE_POSITIVE``, ``85``); extra columns follow. Every flag of the plan appears in its
document's CSV: one without a valid answer has status ``failed`` or ``missing`` and an error.

Cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return; OWASP "CSV injection") are written with a leading apostrophe.
``read_csv`` removes it again, so values round-trip through our own tools.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text, write_files_if_changed
from .costs.ledger import read_spend
from .costs.usage import RunSpend, Spend
from .errors import ReportError
from .layout import Layout
from .records import (
    BatchResult,
    DocumentStats,
    FlagResult,
    Manifest,
    MergedDocument,
    MergedJob,
    PlanSummary,
    ResultSet,
    RunSummary,
    read_record,
    write_record,
    write_record_if_changed,
)

LEGACY_COLUMNS = (
    "issue_id",
    "page_number",
    "issue",
    "highlighted_context",
    "pass_code",
    "error_category",
    "confidence_score",
    "reasoning",
)
EXTRA_COLUMNS = (
    "rule_id",
    "type",
    "message",
    "suggestions",
    "issue_key",
    "provider",
    "model",
    "status",
    "error",
)
DOCUMENT_COLUMNS = LEGACY_COLUMNS + EXTRA_COLUMNS
COMBINED_COLUMNS = ("subject", "filename", *DOCUMENT_COLUMNS)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# A report cell may be large (a 1 MB message or context is carried through to the CSVs); the
# csv module's default limit of 128 KiB would make such a document CSV unreadable when combined.
csv.field_size_limit(64 * 1024 * 1024)


def _needs_escape(value: str) -> bool:
    return value.startswith(_FORMULA_START) or (value.startswith("'") and _needs_escape(value[1:]))


def escape_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if _needs_escape(text) else text


def unescape_cell(text: str) -> str:
    return text[1:] if text.startswith("'") and _needs_escape(text[1:]) else text


# what makes a cell need quotes: the csv module's QUOTE_MINIMAL characters, and a lone CR
_QUOTED = re.compile('[,"\n\r]')
_ESCAPE_FIRST = frozenset(("'", *_FORMULA_START))  # first characters that may need the apostrophe


def _field(text: str) -> str:
    """A cell quoted as the csv module's QUOTE_MINIMAL does, and also when it holds a lone CR.

    (Python 3.11's writer quotes only the characters of its ``\\n`` line terminator, so a bare
    carriage return would end the record early for every reader.)
    """
    if _QUOTED.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _cell(value: Any) -> str:
    """``_field(escape_cell(value))``, with the common cases (empty, a number, plain text) short."""
    if value is None or value == "":
        return ""
    text = value if type(value) is str else str(value)
    if text[0] in _ESCAPE_FIRST and _needs_escape(text):
        text = "'" + text
    return '"' + text.replace('"', '""') + '"' if _QUOTED.search(text) else text


def render_csv(columns: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> str:
    names = list(columns)
    lines = [",".join(_field(n) for n in names)]
    lines += [",".join([_cell(row.get(k)) for k in names]) for row in rows]
    return "\n".join(lines) + "\n"


def _render_row(cells: Iterable[str]) -> str:
    return ",".join(_field(escape_cell(c)) for c in cells) + "\n"


_DOCUMENT_HEADER = ",".join(_field(n) for n in DOCUMENT_COLUMNS)


def _combined_records(path: str | Path, doc: DocumentStats) -> list[str]:
    """The records of one document CSV as lines of the combined CSV (each ends with a newline)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        text = handle.read()
    records = _records_as_text(text, _render_row((doc.subject, doc.filename))[:-1] + ",")
    if records is not None:
        return records
    rows = ({"subject": doc.subject, "filename": doc.filename, **row} for row in read_csv(path))
    return [_render_row(row.get(c) for c in COMBINED_COLUMNS) for row in rows]


def _records_as_text(text: str, prefix: str) -> list[str] | None:
    """Each record of a CSV that ``render_csv`` wrote with ``DOCUMENT_COLUMNS``, after
    ``prefix``; None for any other text (another header, another line ending)."""
    lines = text.split("\n")
    if lines[0] != _DOCUMENT_HEADER or lines[-1] != "":
        return None
    records: list[str] = []
    pending: list[str] = []
    quotes = 0
    for line in lines[1:-1]:
        # a newline inside a quoted cell has an odd number of quotes before it in its record
        pending.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            records.append(prefix + "\n".join(pending) + "\n")
            pending, quotes = [], 0
    return None if pending else records


def write_csv(path: str | Path, columns: Iterable[str], rows: Iterable[Mapping[str, Any]], bom: bool) -> None:
    """Write a CSV atomically; ``bom`` starts it with a UTF-8 byte-order mark (for Excel)."""
    atomic_write_text(path, ("\ufeff" if bom else "") + render_csv(columns, rows))


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of one of our CSVs, with or without a byte-order mark."""
    return list(iter_csv(path))


def iter_csv(path: str | Path) -> Iterator[dict[str, str]]:
    """The rows of ``read_csv`` one at a time, for a reader that keeps less than every row.

    Read as ``csv.DictReader`` reads them (blank lines skipped, missing cells empty) without its
    work per row in Python; only a cell that starts with an apostrophe can need unescaping. A row
    with more cells than the header is a damaged file: ReportError naming it and the line."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        width = len(header)
        for cells in reader:
            if not cells:
                continue
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            elif len(cells) > width:
                raise ReportError(
                    f"{path}: line {reader.line_num}: {len(cells)} cells where the header has "
                    f"{width}; the file is damaged: delete it and run the pipeline again"
                )
            yield {k: unescape_cell(v) if v[:1] == "'" else v for k, v in zip(header, cells, strict=True)}


def load_results(paths: Iterable[str | Path]) -> list[BatchResult]:
    """The batch results of sync part results or remote jobs' results."""
    return [batch for path in paths for batch in read_record(path, ResultSet).batches]


def document_rows(manifest: Manifest, results: list[BatchResult]) -> list[dict[str, Any]]:
    answers: dict[str, tuple[FlagResult, BatchResult]] = {}
    for batch in results:
        for key, item in batch.items.items():
            answers[key] = (item, batch)
    rows = []
    for flag in manifest.flags:
        found = answers.get(flag.key)
        if found is None:
            item, provider, model = (
                FlagResult(status="missing", error="no result for this flag; rerun the pipeline"),
                "",
                "",
            )
        else:
            item, provider, model = found[0], found[1].provider, found[1].model
        rows.append(
            {
                "issue_id": flag.issue_id,
                "page_number": "" if flag.page is None else flag.page,
                "issue": flag.issue,
                "highlighted_context": flag.highlighted_context,
                "pass_code": flag.pass_code,
                "error_category": item.error_category,
                "confidence_score": "" if item.confidence_score is None else item.confidence_score,
                "reasoning": item.reasoning,
                "rule_id": flag.rule_id,
                "type": flag.type,
                "message": flag.message,
                "suggestions": flag.suggestions,
                "issue_key": flag.key,
                "provider": provider,
                "model": model,
                "status": item.status,
                "error": item.error or "; ".join(item.notes),
            }
        )
    return rows


def document_outputs(
    manifest_file: str | Path,
    result_files: Iterable[str | Path],
    csv_file: str | Path,
    bom: bool = False,
    loaded: dict[str, list[BatchResult]] | None = None,
) -> tuple[str, DocumentStats]:
    """One document's CSV text and statistics (``merge_job`` writes them). ``loaded`` keeps
    the result files already read by the same merge job."""
    manifest = read_record(manifest_file, Manifest)
    wanted = set(manifest.batches) | ({manifest.cascade_batch} if manifest.cascade_batch else set())
    cache = {} if loaded is None else loaded
    results = []
    for path in map(str, result_files):
        if path not in cache:
            cache[path] = load_results([path])
        results.extend(b for b in cache[path] if b.batch_id in wanted)
    rows = document_rows(manifest, results)
    local = next((b for b in results if b.batch_id == manifest.cascade_batch), None)
    sent = {k: item for b in results if b is not local for k, item in b.items.items()}
    audited = [k for k in (local.items if local else {}) if k in sent and sent[k].error_category]
    text = ("\ufeff" if bom else "") + render_csv(DOCUMENT_COLUMNS, rows)
    stats = DocumentStats(
        subject=manifest.subject,
        filename=manifest.filename,
        csv=str(csv_file),
        issues=len(rows),
        batches=len(manifest.batches),
        categories=dict(Counter(r["error_category"] for r in rows if r["error_category"])),
        statuses=dict(Counter(r["status"] for r in rows)),
        # the cascade's answers were not sent: they count no request and cost nothing
        spend=sum((b.spend() for b in results if b is not local), Spend()),
        providers=sorted({b.provider for b in results if b is not local}),
        answers_by_provider=answered_by(rows),
        cascaded=len(local.items) - len(audited) if local else 0,
        audited=len(audited),
        audit_agreed=sum(local.items[k].error_category == sent[k].error_category for k in audited)
        if local
        else 0,
    )
    return text, stats


def merge_job(job: str, documents: list[MergedDocument], output: str | Path, bom: bool = False) -> MergedJob:
    """Write the CSVs and statistics of the documents of one merge job, then its record.

    Each result file is read once for all the job's documents; only the files whose content
    changed are rewritten (so an edit rewrites only its document's files). The CSVs are written
    together, their fsyncs side by side (docs/DESIGN.md §27), then the statistics; the record
    is always written: it is the job's output.
    """
    loaded: dict[str, list[BatchResult]] = {}
    outputs = [document_outputs(doc.manifest, doc.results, doc.csv, bom, loaded) for doc in documents]
    changed = write_files_if_changed(
        [(doc.csv, text) for doc, (text, _) in zip(documents, outputs, strict=True)]
    )
    for doc, (_text, stats) in zip(documents, outputs, strict=True):
        write_record_if_changed(doc.stats, stats, durable=False)
    rewritten = [doc.csv for doc, written in zip(documents, changed, strict=True) if written]
    record = MergedJob(job=job, documents=documents, rewritten=rewritten)
    write_record(output, record, durable=False)
    return record


def answered_by(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Flags answered (``ok`` or ``repaired``) per provider, most first."""
    answered = Counter(r["provider"] for r in rows if r["status"] in ("ok", "repaired"))
    return dict(answered.most_common())


def combine(
    csv_files: Iterable[str | Path],
    stats_files: Iterable[str | Path],
    plan_file: str | Path,
    combined_csv: str | Path,
    summary_json: str | Path,
    ledger_file: str | Path | None = None,
    bom: bool = False,
    started: float | None = None,
) -> RunSummary:
    """Write the combined CSV (every document's rows after its subject and filename, in the order
    given) and the run summary, whose counts come from the statistics each CSV was written with.

    A document CSV of this version's columns is copied record by record as text, each record
    after its two new cells (what reading and writing it again would give, in a fraction of the
    time); one with other columns (written by an older version) is read and written cell by cell.
    """
    stats = [read_record(p, DocumentStats) for p in stats_files]
    parts = [_render_row(COMBINED_COLUMNS)]
    for path, doc in zip(csv_files, stats, strict=True):
        parts += _combined_records(path, doc)
    atomic_write_text(combined_csv, ("\ufeff" if bom else "") + "".join(parts))
    plan = read_record(plan_file, PlanSummary)
    categories: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    subjects: Counter[str] = Counter()
    for s in stats:
        categories.update(s.categories)
        statuses.update(s.statuses)
        subjects[s.subject] += s.issues
    summary = RunSummary(
        documents=len(stats),
        issues=sum(s.issues for s in stats),
        batches=sum(s.batches for s in stats),
        categories=dict((+categories).most_common()),
        statuses=dict((+statuses).most_common()),
        subjects=dict(sorted((+subjects).items())),
        spend=sum((s.spend for s in stats), Spend()),
        this_run=read_spend(ledger_file).as_run_spend() if ledger_file is not None else RunSpend(),
        answers_by_provider=dict(
            sum((Counter(s.answers_by_provider) for s in stats), Counter()).most_common()
        ),
        cascaded=sum(s.cascaded for s in stats),
        audited=sum(s.audited for s in stats),
        audit_agreed=sum(s.audit_agreed for s in stats),
        skipped_documents=plan.skipped_documents,
        skipped_rows=plan.skipped_rows,
        warnings=plan.warnings,
        document_reports=[s.csv for s in stats],
        combined_report=str(combined_csv),
        **run_times(started),
    )
    write_record(summary_json, summary, indent=2)
    return summary


def run_times(started: float | None, now: datetime | None = None) -> dict[str, Any]:
    """``started_at`` (from ``started``, seconds since the epoch), ``finished_at`` (now) and the
    seconds in between, for the run summary."""
    finished = now or datetime.now(UTC)
    times: dict[str, Any] = {"finished_at": finished.isoformat(timespec="seconds")}
    if started is not None:
        begun = datetime.fromtimestamp(started, UTC)
        times["started_at"] = begun.isoformat(timespec="seconds")
        times["duration_seconds"] = round((finished - begun).total_seconds(), 1)
    return times


def format_summary(summary: RunSummary, this_run: RunSpend | None = None) -> str:
    """The summary printed at the end of a run; ``this_run`` is what the run itself sent."""
    this_run = this_run or summary.this_run
    lines = [
        f"Categorised {summary.issues} flag(s) in {summary.documents} document(s), "
        f"{summary.batches} batch(es).",
    ]
    for name, count in summary.categories.items():
        lines.append(f"  {name:<38} {count:>6}")
    statuses = ", ".join(f"{k} {v}" for k, v in summary.statuses.items())
    lines.append(f"Status: {statuses or 'none'}")
    if len(summary.answers_by_provider) > 1:
        answered = ", ".join(f"{k} {v}" for k, v in summary.answers_by_provider.items())
        lines.append(f"Answered by: {answered}")
    lines.append(f"This run: {this_run.describe()}")
    over = summary.statuses.get("over_budget", 0)
    if over:
        lines.append(
            f"{over} flag(s) were not sent: the run reached max_cost_usd. Rerun with a higher cap "
            f"(--config max_cost_usd=...) to continue; the answers received are reused."
        )
    if summary.skipped_documents:
        lines.append(f"Skipped {len(summary.skipped_documents)} document(s):")
        lines += [f"  {d.document}: {d.reason}" for d in summary.skipped_documents]
    if summary.skipped_rows:
        lines.append(f"Skipped {len(summary.skipped_rows)} report row(s) (see the summary JSON).")
    if summary.warnings:
        lines.append(f"{len(summary.warnings)} warning(s) (see the summary JSON).")
    if summary.cascaded or summary.audited:
        lines.append(f"Answered locally by the cascade (no request): {summary.cascaded} flag(s).")
    if summary.audited:
        share = summary.audit_agreed / summary.audited
        lines.append(
            f"Cascade audit: {summary.audited} flag(s) also sent to the provider; it agreed on "
            f"{summary.audit_agreed} ({share:.0%})."
        )
    lines.append(f"Combined report: {summary.combined_report}")
    folder = Path(summary.combined_report).parent
    where = Layout(str(folder), "").document_csv("<Subject>", "<stem>")
    lines.append(f"Per-document reports ({len(summary.document_reports)}): {where}")
    view = Layout(str(folder), "")
    lines.append(
        f"Report: {view.report_html}, workbook: {view.workbook}, LanguageTool feedback: {view.feedback_dir}/"
    )
    if summary.duration_seconds is not None:
        lines.append(f"Run time to the combined report: {summary.duration_seconds:.1f} s")
    return "\n".join(lines)


def print_summary(
    summary_json: str | Path, sources: Iterable[str | Path] = (), ledger_file: str | Path | None = None
) -> None:
    """Print the run summary at the end of a run (the workflow's ``onsuccess``).

    Only a summary at least as new as every one of ``sources`` (the records of the merge jobs
    whose CSVs it is made from) is printed: a run that stopped before ``combine`` (``--until
    merge``) must not show the summary of an earlier run as its own. What this run sent and
    spent is read from its ledger (``ledger_file``), not from the summary.
    """
    try:
        summary = read_record(summary_json, RunSummary)
        written = Path(summary_json).stat().st_mtime_ns
    except (FileNotFoundError, ValueError):
        return
    newer = [p for p in sources if Path(p).exists() and Path(p).stat().st_mtime_ns > written]
    if newer:
        print(
            f"{summary_json} was not rebuilt in this run ({len(newer)} merge record(s) are newer, "
            f"e.g. {newer[0]}); run without --until to update it and the combined report."
        )
        return
    this_run = read_spend(ledger_file).as_run_spend() if ledger_file is not None else None
    print(format_summary(summary, this_run))
