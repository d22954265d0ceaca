"""Prompt volume: characters sent per flag and per page, now and by the earlier tool.

Now: the plan is built in-process (``llm_categoriser.plan.build_plan``, provider gemini, the
repository's settings) into a scratch folder, and every batch's first request is rendered
exactly as the provider sends it: ``len(system) + len(render_user(batch))``.

The earlier tool (estimate): requests of 10 flags in report order per document, each carrying a
5,900-character system prompt and the full text of every distinct page of its flags twice::

    old_total = sum over requests r of (5900 + 2 * sum over distinct pages p of r of chars(p))
    old_per_issue = old_total / issues

where ``chars(p)`` is the whole page (from its marker to the next, no cut) named by the report's
Page column. The flag rows themselves are left out of the estimate, so it is a lower bound for
the earlier tool and the comparison favours it.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench_support import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OLD_SYSTEM_CHARS = 5900
OLD_BATCH = 10


def prompt_volume(documents: Path, scratch: Path) -> dict[str, Any]:
    from llm_categoriser.lt_report import load_report
    from llm_categoriser.pages import split_pages
    from llm_categoriser.plan import build_plan
    from llm_categoriser.plan_jobs import planned_batches
    from llm_categoriser.prompts import load_templates, render_user
    from llm_categoriser.settings import resolve

    settings = resolve(
        {"documents_dir": str(documents), "data_dir": str(scratch), "provider": "gemini"}, env={}
    )
    plan = build_plan(settings)
    templates = load_templates()
    system = len(templates.system)
    total_user = total_system = requests = issues = 0
    page_text_sent = 0
    pages_sent: set[tuple[str, str, Any]] = set()
    largest_user = 0
    for doc in plan.documents:
        for batch in planned_batches(settings.layout, doc.subject, doc.document) if doc.batch_ids else []:
            user = render_user(batch, templates=templates)
            requests += 1
            issues += len(batch.flags)
            total_system += system
            total_user += len(user)
            largest_user = max(largest_user, len(user))
            wanted = {flag.context_page for flag in batch.flags}
            for page in batch.pages:
                if page.page in wanted:
                    page_text_sent += len(page.text.strip())
                    pages_sent.add((doc.subject, doc.filename, page.page))

    # the earlier tool, on the same report and Markdown
    report = load_report(settings.report)
    by_doc: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for issue in report.issues:
        by_doc[(issue.subject, issue.filename)].append(issue)
    old_total = old_requests = old_issues = 0
    distinct_old_pages: set[tuple[str, str, Any]] = set()
    distinct_page_chars = 0
    for (subject, filename), rows in by_doc.items():
        md = documents / subject / "markdown" / filename
        if not md.is_file():
            continue
        pages = split_pages(md.read_text(encoding="utf-8-sig", errors="replace")).pages
        for start in range(0, len(rows), OLD_BATCH):
            chunk = rows[start : start + OLD_BATCH]
            distinct = {r.page for r in chunk}
            old_total += OLD_SYSTEM_CHARS + 2 * sum(len(pages.get(p, "")) for p in distinct)
            old_requests += 1
            old_issues += len(chunk)
            for p in distinct:
                if (subject, filename, p) not in distinct_old_pages:
                    distinct_old_pages.add((subject, filename, p))
                    distinct_page_chars += len(pages.get(p, ""))

    new_total = total_system + total_user
    return {
        "issues": issues,
        "requests": requests,
        "system_chars": system,
        "total_chars": new_total,
        "system_chars_total": total_system,
        "user_chars_total": total_user,
        "largest_user_prompt": largest_user,
        "chars_per_issue": new_total / issues,
        "distinct_pages_sent": len(pages_sent),
        "chars_per_distinct_page": new_total / max(1, len(pages_sent)),
        "page_text_chars_sent": page_text_sent,
        "old": {
            "formula": "sum_r(5900 + 2*sum_{distinct pages p of r} chars(p)) / issues; r = 10 flags "
            "in report order per document; chars(p) = whole page text by the Page column",
            "requests": old_requests,
            "issues": old_issues,
            "total_chars": old_total,
            "chars_per_issue": old_total / max(1, old_issues),
            "distinct_pages": len(distinct_old_pages),
            "chars_per_distinct_page": old_total / max(1, len(distinct_old_pages)),
            "distinct_page_chars": distinct_page_chars,
        },
        "ratio_new_to_old": (new_total / issues) / (old_total / max(1, old_issues)),
    }


def tokens_from_results(workdir: Path) -> dict[str, int]:
    """Input tokens the emulator reported (ceil(chars / 4) per request) over a sync run's results."""
    import json

    tokens = requests = 0
    for path in (workdir / "data" / "results").rglob("part-*.json"):
        for batch in json.loads(path.read_text(encoding="utf-8"))["batches"]:
            tokens += int(batch.get("input_tokens") or 0)
            requests += int(batch.get("requests") or 0)
    return {"input_tokens": tokens, "requests": requests, "approx_chars": tokens * 4}
