"""The plan's stamp: when the previous plan is still current, and what makes it stale.

docs/DESIGN.md §9. The stamp key covers the package's whole code, the settings, what a request
depends on, the report's size and modification time and the cascade model; the stamp also lists
the size and modification time of every Markdown file read. Checking costs a ``stat`` per Markdown
file and one listing of each document's planning folder, instead of reading them all.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from .layout import PACKAGE_DIR
from .records import PLAN_FORMAT, PlanStamp, PlanSummary, RecordError, fingerprint, read_record
from .settings import Settings

CODE_SUFFIXES = (".py", ".md", ".yaml")


def file_stat(path: str | Path) -> list[int] | None:
    """Size and modification time (ns) of ``path``, or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def code_files() -> list[Path]:
    """Every file of the package's code, prompts and schema."""
    return sorted(
        path
        for path in PACKAGE_DIR.rglob("*")
        if path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts
    )


@cache
def code_digest() -> str:
    """Digest of ``code_files``: any change to the package re-plans."""
    digest = hashlib.sha256()
    for path in code_files():
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def stamp_key(settings: Settings, request: dict[str, Any]) -> str:
    """What the whole plan depends on besides the Markdown files (``request``: request_settings)."""
    data = {
        "format": PLAN_FORMAT,
        "code": code_digest(),
        "settings": settings.model_dump(mode="json"),
        "request": request,
        "report": file_stat(settings.report),
        "cascade_model": file_stat(settings.layout.cascade_model) if settings.cascade else None,
    }
    return fingerprint(data)


def has_files(folder: str | Path, names: Iterable[str]) -> bool:
    """Whether ``folder`` holds every one of ``names`` (one directory listing)."""
    wanted = list(names)
    if not wanted:
        return True
    try:
        present = set(os.listdir(folder))
    except OSError:
        return False
    return all(name in present for name in wanted)


def current_summary(settings: Settings, key: str) -> PlanSummary | None:
    """The previous plan's summary, when its stamp matches ``key`` and its files are all there.

    None when anything it was planned from changed, or a planning file of one of its documents is
    missing: the caller then plans again.
    """
    layout = settings.layout
    try:
        stamp = read_record(layout.plan_stamp, PlanStamp)
        summary = read_record(layout.plan_summary, PlanSummary)
    except (OSError, ValueError, RecordError):  # absent, or written by another version: re-plan
        return None
    if stamp.key != key:
        return None
    if any(file_stat(path) != value for path, value in stamp.files.items()):
        return None
    # One listing of each document's folder rather than a stat per file (docs/DESIGN.md §9).
    for doc in summary.documents:
        wanted = [layout.file_name("manifest")]
        if doc.batch_ids:
            wanted.append(layout.file_name("batches"))
        if doc.cascaded:
            wanted.append(layout.file_name("cascade_spec"))
        if not has_files(os.path.dirname(layout.manifest(doc.subject, doc.document)), wanted):
            return None
    return summary
