"""The evidence of every flag of a report: its page, the document hints, the offline verdict.

Reads what the planner reads (the report through ``report.load_report``, the Markdown split
into pages, each flag's page found as the planner finds it), so the classifier sees a flag the
same way in training, in the benchmark and in the pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..errors import UnsafePathError
from ..layout import Layout
from ..models import Issue
from ..pages import Document, split_pages
from ..paths import inside
from ..plan import Plan, resolve_page
from ..providers.offline import rules as offline_rules
from .features import FlagEvidence
from .fragments import DocumentWords

log = logging.getLogger(__name__)


def read_document(layout: Layout, subject: str, filename: str) -> str | None:
    """A document's Markdown, or None when it cannot be read (its flags get no document hints)."""
    try:
        path = inside(layout.docs, layout.markdown(subject, filename))
        return path.read_bytes().decode("utf-8-sig", errors="replace")
    except (UnsafePathError, OSError):
        return None


def document_evidence(issues: Iterable[Issue], text: str | None) -> list[FlagEvidence]:
    """The evidence of the flags of one document (``text`` None: the Markdown is unreadable)."""
    doc = split_pages(text) if text and text.strip() else Document(text="", pages={})
    scratch = Plan()  # page warnings are the planner's to give, not ours
    words = DocumentWords.from_text(text or "")
    out = []
    for issue in issues:
        page = resolve_page(issue, doc, scratch, "") if doc.pages else None
        page_text = doc.pages.get(page) if doc.pages else None
        hints = offline_rules.document_hints(issue, text or "")
        category, confidence, _reason = offline_rules.classify(issue, page_text, hints)
        out.append(FlagEvidence(issue, hints, str(category), int(confidence), words.fragment(issue.issue)))
    return out


def report_evidence(issues: Iterable[Issue], layout: Layout) -> dict[str, FlagEvidence]:
    """Flag key -> evidence for ``issues`` (any number of documents), reading each document once."""
    grouped: dict[tuple[str, str], list[Issue]] = {}
    for issue in issues:
        grouped.setdefault((issue.subject, issue.filename), []).append(issue)
    out: dict[str, FlagEvidence] = {}
    for (subject, filename), members in grouped.items():
        for evidence in document_evidence(members, read_document(layout, subject, filename)):
            out[evidence.issue.key] = evidence
    return out
