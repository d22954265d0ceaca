"""Render the prompt templates (files under ``prompts/``; their digest is part of every batch fingerprint).

Templates use ``string.Template`` placeholders (``$subject``) so that braces in Markdown need
no escaping. The flags go in a Markdown table (cells with ``|`` escaped, no HTML escaping),
then each referenced page once, between ``<page>`` tags.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from .layout import PROMPTS_DIR
from .records import PageText, PlannedBatch, PlannedFlag

TABLE_COLUMNS = (
    "issue_id",
    "page",
    "issue",
    "rule_id",
    "type",
    "message",
    "suggestions",
    "highlighted_context",
)


@dataclass(frozen=True)
class Templates:
    system: str
    user: Template
    retry: Template
    digest: str


def template_paths() -> dict[str, Path]:
    return {name: PROMPTS_DIR / f"{name}.md" for name in ("system", "user", "retry")}


@cache
def load_templates(folder: str | None = None) -> Templates:
    paths = template_paths()
    if folder is not None:
        paths = {name: Path(folder) / path.name for name, path in paths.items()}
    texts = {name: path.read_text(encoding="utf-8") for name, path in paths.items()}
    digest = hashlib.sha256("\x1e".join(texts[k] for k in sorted(texts)).encode()).hexdigest()[:16]
    return Templates(
        system=texts["system"].strip(),
        user=Template(texts["user"]),
        retry=Template(texts["retry"]),
        digest=digest,
    )


def cell(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def issue_table(flags: Iterable[PlannedFlag], limit: int) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for flag in flags:
        row = [
            str(flag.local_id),
            "" if flag.page is None else str(flag.page),
            cell(flag.issue, limit),
            cell(flag.rule_id, limit),
            cell(flag.type, limit),
            cell(flag.message, limit),
            cell(flag.suggestions, limit),
            cell(flag.highlighted_context, limit),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_pages(pages: Iterable[PageText]) -> str:
    parts = []
    for page in pages:
        label = "before the first page marker" if page.page is None else str(page.page)
        note = ' cut="true"' if page.cut else ""
        parts.append(f'<page number="{label}"{note}>\n{page.text.strip()}\n</page>')
    return "\n\n".join(parts) if parts else "(no page text available)"


def render_user(
    batch: PlannedBatch,
    local_ids: set[int] | None = None,
    problems: str = "",
    templates: Templates | None = None,
) -> str:
    """The user part for a whole batch, or a reduced one for ``local_ids`` on a retry."""
    templates = templates or load_templates()
    flags = batch.flags
    if local_ids is not None:
        flags = [f for f in flags if f.local_id in local_ids]
    wanted = {f.context_page for f in flags}
    pages = [p for p in batch.pages if p.page in wanted]
    values = {
        "subject": batch.subject,
        "filename": batch.filename,
        "issue_table": issue_table(flags, batch.max_cell_chars),
        "pages": render_pages(pages),
        "problems": problems or "no answer",
    }
    template = templates.user if local_ids is None else templates.retry
    return template.safe_substitute(values)


def prompt_chars(batch: PlannedBatch, templates: Templates | None = None) -> int:
    """Characters of a batch's first request as sent: the system part and the user part."""
    templates = templates or load_templates()
    return len(templates.system) + len(render_user(batch, templates=templates))
