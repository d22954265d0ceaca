"""The data the HTML report shows, computed once in Python and embedded as JSON.

Rows go in as arrays (``ROW_FIELDS`` names the positions) with the document as an index into
``documents``: at four times the reference corpus that keeps the page a third smaller than
objects would. Chart series are aggregated here so the page does not recount 20,000 rows.
"""

from __future__ import annotations

import os
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..categories import CATEGORY_NAMES
from ..layout import Layout
from .flags import Flag
from .lt_feedback import (
    MIN_RULE_FLAGS,
    MIN_RULE_SHARE,
    MIN_WORD_CONFIDENCE,
    RuleCount,
    SubjectFeedback,
    rule_counts,
)

ROW_FIELDS = (
    "doc",
    "issue_id",
    "page",
    "rule_id",
    "type",
    "issue",
    "context",
    "category",
    "confidence",
    "reasoning",
    "message",
    "suggestions",
    "status",
    "error",
)
CONFIDENCE_BINS = tuple(range(0, 100, 10))  # 0-9, 10-19, ..., 90-100
RULES_CHARTED = 25

# Summary fields the overview shows in its own way; any other scalar, flat mapping or short list
# in the summary (fields added by later versions) is listed in the "Run" table under its name.
_SHOWN = {
    "documents",
    "issues",
    "batches",
    "categories",
    "statuses",
    "subjects",
    "skipped_documents",
    "skipped_rows",
    "warnings",
    "document_reports",
    "combined_report",
}


def relative_href(report_dir: Path, target: str | Path) -> str:
    """A relative, percent-encoded link from the report's folder (never a scheme or host)."""
    relative = os.path.relpath(target, report_dir)
    return urllib.parse.quote(Path(relative).as_posix(), safe="/")


def _extra_summary(summary: Mapping[str, Any], prefix: str = "") -> list[list[Any]]:
    """Rows for the "Run" table; a nested mapping (``spend``, ``this_run``) is opened one level,
    its rows named ``"<key>: <field>"``."""
    extra: list[list[Any]] = []
    for key, value in summary.items():
        if not prefix and key in _SHOWN:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, str | int | float | bool) or value is None:
            extra.append([name, value])
        elif isinstance(value, Mapping) and all(
            isinstance(v, str | int | float | bool) or v is None for v in value.values()
        ):
            extra.append([name, {str(k): v for k, v in value.items()}])
        elif isinstance(value, Mapping) and not prefix:
            extra.extend(_extra_summary(value, prefix=f"{key}: "))
        elif (
            isinstance(value, list)
            and len(value) <= 20
            and all(isinstance(v, str | int | float) for v in value)
        ):
            extra.append([name, ", ".join(str(v) for v in value)])
    return extra


def _bin(confidence: int) -> int:
    return min(max(confidence, 0), 100) // 10 if confidence < 100 else 9


def chart_data(flags: Sequence[Flag], counts: Sequence[RuleCount]) -> dict[str, Any]:
    subjects = sorted({f.subject for f in flags})
    by_subject: dict[str, Counter[str]] = defaultdict(Counter)
    confidence: dict[str, list[int]] = {c: [0] * len(CONFIDENCE_BINS) for c in CATEGORY_NAMES}
    for flag in flags:
        if not flag.answered:
            continue
        by_subject[flag.error_category][flag.subject] += 1
        if flag.confidence_score is not None and flag.error_category in confidence:
            confidence[flag.error_category][_bin(flag.confidence_score)] += 1
    ranked = [c for c in counts if c.flags >= MIN_RULE_FLAGS][:RULES_CHARTED]
    return {
        "subjects": subjects,
        "categoriesBySubject": {
            c: [by_subject[c][s] for s in subjects] for c in CATEGORY_NAMES if by_subject.get(c)
        },
        "confidenceBins": [f"{b}–{b + 9 if b < 90 else 100}" for b in CONFIDENCE_BINS],
        "confidenceByCategory": {c: v for c, v in confidence.items() if any(v)},
        "rules": [[c.rule_id, c.false_positives, c.flags] for c in ranked],
    }


def report_payload(
    flags: Sequence[Flag],
    summary: Mapping[str, Any],
    feedback: Sequence[SubjectFeedback],
    disable: Sequence[RuleCount],
    report_dir: Path,
    layout: Layout,
) -> dict[str, Any]:
    documents: dict[tuple[str, str], int] = {}
    doc_rows: list[list[str]] = []
    rows: list[list[Any]] = []
    for flag in flags:
        key = (flag.subject, flag.filename)
        if key not in documents:
            documents[key] = len(doc_rows)
            href = relative_href(report_dir, layout.document_csv(flag.subject, flag.document))
            doc_rows.append([flag.subject, flag.filename, href])
        rows.append(
            [
                documents[key],
                flag.issue_id,
                flag.page_number,
                flag.rule_id,
                flag.type,
                flag.issue,
                flag.highlighted_context,
                flag.error_category,
                flag.confidence_score,
                flag.reasoning,
                flag.message,
                flag.suggestions,
                flag.status,
                flag.error,
            ]
        )
    models = Counter((f.provider, f.model) for f in flags if f.provider or f.model)
    feedback_link = relative_href(report_dir, layout.feedback_dir)
    return {
        "overview": {
            "flags": len(flags),
            "documents": len(doc_rows),
            "subjects": len({f.subject for f in flags}),
            "statuses": dict(Counter(f.status for f in flags).most_common()),
            "categories": dict(Counter(f.error_category for f in flags if f.answered).most_common()),
            "models": [[p, m, n] for (p, m), n in models.most_common()],
            "skippedDocuments": len(summary.get("skipped_documents") or []),
            "skippedRows": len(summary.get("skipped_rows") or []),
            "warnings": len(summary.get("warnings") or []),
            "summary": _extra_summary(summary),
        },
        "fields": list(ROW_FIELDS),
        "documents": doc_rows,
        "rows": rows,
        "charts": chart_data(flags, rule_counts(flags)),
        "feedback": {
            "folder": feedback_link,
            "minWordConfidence": MIN_WORD_CONFIDENCE,
            "minRuleFlags": MIN_RULE_FLAGS,
            "minRuleShare": MIN_RULE_SHARE,
            "subjects": [
                [
                    s.subject,
                    s.words,
                    [[r.rule_id, r.false_positives, r.flags] for r in s.rules],
                    relative_href(report_dir, layout.feedback_words(s.subject)),
                    relative_href(report_dir, layout.feedback_subject_rules(s.subject)),
                ]
                for s in feedback
            ],
            "disable": [[r.rule_id, r.false_positives, r.flags] for r in disable],
        },
    }
