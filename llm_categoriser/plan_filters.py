"""The ``subjects`` and ``documents`` filters: which flags of the report a run plans.

An entry that selects nothing is a configuration error naming the closest names, never a run
that looks finished (docs/DESIGN.md §24).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .errors import ConfigError
from .lt_report import LoadedReport
from .models import Issue
from .paths import normalise_filter
from .settings import Settings


def _closest(wanted: str, known: Iterable[str]) -> list[str]:
    """Up to three known names nearest to ``wanted`` (compared as the filters compare them)."""
    by_form: dict[str, str] = {}
    for name in sorted(known):
        by_form.setdefault(normalise_filter(name), name)
    found = difflib.get_close_matches(normalise_filter(wanted), list(by_form), n=3, cutoff=0.5)
    return [by_form[form] for form in found]


def _unmatched(key: str, what: str, wanted: Iterable[str], known: set[str], hint: str = "") -> list[str]:
    """One line per entry of filter ``key`` that names nothing in ``known``."""
    forms = {normalise_filter(name) for name in known}
    lines = []
    for entry in wanted:
        if normalise_filter(entry) in forms:
            continue
        near = _closest(entry, known)
        if near:
            suggestion = "closest: " + ", ".join(repr(n) for n in near)
        else:
            listed = sorted(known)
            suggestion = "known: " + (", ".join(repr(n) for n in listed[:10]) or "none")
            suggestion += f" and {len(listed) - 10} more" if len(listed) > 10 else ""
        lines.append(f"config key {key}: {entry!r} matches no {what}{hint}; {suggestion}")
    return lines


def check_filters(report: LoadedReport, settings: Settings) -> None:
    """Every entry of the subjects and documents filters must select something (ConfigError).

    A typo would otherwise select nothing, or less than meant, and the run would look finished.
    """
    subjects = {normalise_filter(s) for s in settings.subjects}
    all_subjects = {i.subject for i in report.issues}
    problems = _unmatched("subjects", "subject of the report", settings.subjects, all_subjects)
    in_scope = [i for i in report.issues if not subjects or normalise_filter(i.subject) in subjects]
    names = {i.filename for i in in_scope} | {i.document for i in in_scope}
    hint = " of the selected subjects" if subjects else " of the report"
    problems += _unmatched("documents", "document", settings.documents, names, hint)
    if problems:
        raise ConfigError(
            "Nothing to do for part of the selection (nothing was changed):\n  "
            + "\n  ".join(problems)
            + "\nFilters ignore case, and spaces, hyphens and underscores match each other."
        )


def select_issues(report: LoadedReport, settings: Settings) -> dict[tuple[str, str], list[Issue]]:
    """The flags the filters select, by (subject, Markdown file name), in report order."""
    check_filters(report, settings)
    subjects = {normalise_filter(s) for s in settings.subjects}
    documents = {normalise_filter(d) for d in settings.documents}
    grouped: dict[tuple[str, str], list[Issue]] = {}
    for issue in report.issues:
        if subjects and normalise_filter(issue.subject) not in subjects:
            continue
        if documents and not (
            normalise_filter(issue.filename) in documents or normalise_filter(issue.document) in documents
        ):
            continue
        grouped.setdefault((issue.subject, issue.filename), []).append(issue)
    return grouped
