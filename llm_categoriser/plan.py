"""Plan the run from the report: documents, their flags and their batches.

Runs at Snakemake start-up (DESIGN §7: a static DAG computed at parse time, no checkpoints).
Every planning file is written only when its content changes, so an unchanged batch keeps
its modification time and is not recategorised; a batch file holds everything its request
depends on (flags, page text, provider, model, generation settings, prompt digest), and
its fingerprint decides whether an existing result is still valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from . import offline_rules
from .atomic import dumps_json, write_if_changed
from .batching import Planned, make_batches
from .errors import UnsafePathError
from .models import Issue
from .pages import Document, cut_page, find_page, locate, split_pages
from .paths import inside, normalise_filter
from .prompts import load_templates
from .report import LoadedReport, load_report
from .settings import Settings

log = logging.getLogger(__name__)
PLAN_FORMAT = 1


@dataclass
class DocumentPlan:
    subject: str
    filename: str
    document: str
    batch_ids: list[str]
    issues: int

    def parts(self, size: int) -> list[list[str]]:
        return split_parts(self.batch_ids, size)


def split_parts(batch_ids: list[str], size: int) -> list[list[str]]:
    """Sync mode: a document's batches in report order, cut into categorise jobs of ``size``."""
    return [batch_ids[start : start + size] for start in range(0, len(batch_ids), size)]


@dataclass
class Plan:
    documents: list[DocumentPlan] = field(default_factory=list)
    skipped_documents: list[dict[str, Any]] = field(default_factory=list)
    skipped_rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    jobs: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    files_written: int = 0
    seconds: float = 0.0
    cached: bool = False

    @property
    def batches(self) -> int:
        return sum(len(d.batch_ids) for d in self.documents)

    @property
    def issues(self) -> int:
        return sum(d.issues for d in self.documents)


def plan_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "plan"


def batches_dir(settings: Settings, subject: str, document: str) -> Path:
    return plan_dir(settings) / subject / document / "batches"


def batch_path(settings: Settings, subject: str, document: str, batch_id: str) -> Path:
    return batches_dir(settings, subject, document) / f"{batch_id}.json"


def manifest_path(settings: Settings, subject: str, document: str) -> Path:
    return plan_dir(settings) / subject / document / "manifest.json"


def job_spec_path(settings: Settings, job: str) -> Path:
    return plan_dir(settings) / "jobs" / f"{job}.json"


def write_job_specs(plan: Plan, settings: Settings) -> int:
    """One file per batch job listing the batches it carries, rewritten only when that changes.

    It is an input of the submit rule: with modification times as the only rerun trigger, a job
    whose set of batches changes must see a newer input, not just a different list of inputs.
    """
    written = 0
    folder = plan_dir(settings) / "jobs"
    for job, refs in plan.jobs.items():
        written += write_if_changed(job_spec_path(settings, job), dumps_json({"job": job, "batches": refs}))
    if folder.is_dir():
        for stale in folder.glob("*.json"):
            if stale.stem not in plan.jobs:
                stale.unlink()
    return written


def fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@cache
def _offline_rules_digest() -> str:
    source = Path(offline_rules.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:16]


def request_settings(settings: Settings) -> dict[str, Any]:
    """What a request depends on besides its flags and pages (part of the fingerprint)."""
    data: dict[str, Any] = {
        "provider": settings.provider,
        "model": settings.effective_model,
        "prompt": load_templates().digest,
        "max_cell_chars": settings.max_cell_chars,
    }
    if settings.provider == "offline":
        data["rules"] = _offline_rules_digest()
    else:
        data["temperature"] = settings.temperature
        data["thinking_budget"] = settings.thinking_budget
    return data


def _selected(report: LoadedReport, settings: Settings) -> dict[tuple[str, str], list[Issue]]:
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


def _read_markdown(path: Path, plan: Plan, label: str) -> tuple[str | None, str]:
    """The Markdown text, or None and why it cannot be used."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, f"Markdown file {path} not found"
    except OSError as exc:
        return None, f"cannot read the Markdown file {path} ({exc.strerror})"
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        plan.warnings.append(
            f"{label}: {path} is not UTF-8 (byte offset {exc.start}); undecodable bytes replaced"
        )
        return data.decode("utf-8", errors="replace"), ""


def _resolve_page(issue: Issue, doc: Document, plan: Plan, label: str) -> int | None:
    """The page whose text goes with the flag."""
    if not doc.pages:  # an empty Markdown file: already warned about once
        return None
    if issue.page is not None and issue.page in doc.pages:
        return issue.page
    if (
        issue.page is None
        and None in doc.pages
        and (not doc.has_markers or locate(doc.pages[None], issue.context, issue.issue) is not None)
    ):
        return None
    found = find_page(doc, issue.context, issue.issue)
    if issue.page is not None:
        where = f"found on page {found}" if found is not None else "sent without page text"
        plan.warnings.append(
            f"{label}: report row {issue.row}: page {issue.page} has no marker in the Markdown; "
            f"context {where}"
        )
    if found is None and None in doc.pages:
        return None
    return found


def _stat(path: str | Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


@cache
def _code_digest() -> str:
    """Digest of the code whose behaviour shapes the plan (a change invalidates the cache)."""
    here = Path(__file__).parent
    names = ("plan.py", "batching.py", "pages.py", "report.py", "offline_rules.py", "prompts.py", "paths.py")
    digest = hashlib.sha256()
    for name in names:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def _stamp_key(settings: Settings) -> str:
    data = {
        "format": PLAN_FORMAT,
        "code": _code_digest(),
        "settings": settings.model_dump(mode="json"),
        "request": request_settings(settings),
        "report": _stat(settings.report),
    }
    return fingerprint(data)


def _has_files(folder: Path, names: Iterable[str]) -> bool:
    wanted = list(names)
    if not wanted:
        return True
    try:
        present = set(os.listdir(folder))
    except OSError:
        return False
    return all(name in present for name in wanted)


def _load_cached_plan(settings: Settings) -> Plan | None:
    """The previous plan, when the report, the Markdown, the settings and the code are unchanged.

    Checking costs a few hundred ``stat`` calls instead of reading 20 MB of Markdown; the
    planning files themselves are then known to be current, so nothing is rewritten.
    """
    folder = plan_dir(settings)
    try:
        stamp = json.loads((folder / "stamp.json").read_text(encoding="utf-8"))
        summary = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp.get("key") != _stamp_key(settings):
        return None
    if any(_stat(path) != value for path, value in stamp.get("files", {}).items()):
        return None
    plan = Plan(
        documents=[DocumentPlan(**d) for d in summary["documents"]],
        skipped_documents=summary["skipped_documents"],
        skipped_rows=summary["skipped_rows"],
        warnings=summary["warnings"],
    )
    # One directory listing per document rather than a stat per file (1,066 batch specs).
    for doc in plan.documents:
        if not manifest_path(settings, doc.subject, doc.document).exists():
            return None
        batches = batches_dir(settings, doc.subject, doc.document)
        if not _has_files(batches, (f"{b}.json" for b in doc.batch_ids)):
            return None
    plan.jobs = group_jobs(plan, settings)
    if not _has_files(plan_dir(settings) / "jobs", (f"{job}.json" for job in plan.jobs)):
        return None
    plan.cached = True
    return plan


def build_plan(
    settings: Settings,
    report: LoadedReport | None = None,
    progress: Callable[[str], None] | None = None,
) -> Plan:
    started = time.perf_counter()
    if report is None:
        cached = _load_cached_plan(settings)
        if cached is not None:
            cached.seconds = time.perf_counter() - started
            return cached
    key = _stamp_key(settings)
    report = report or load_report(settings.report)
    plan = Plan(
        skipped_rows=[s.as_dict() for s in report.skipped],
        warnings=list(report.warnings),
    )
    req = request_settings(settings)
    grouped = _selected(report, settings)
    documents_dir = Path(settings.documents_dir)
    markdown_files: dict[str, list[int] | None] = {}
    planned: dict[tuple[str, str], str] = {}  # (subject, document) -> the Filename that has it
    for (subject, filename), issues in grouped.items():
        label = f"{subject}/{filename}"
        try:
            md_path = inside(documents_dir, subject, "markdown", filename)
        except UnsafePathError as exc:
            reason = f"{exc}; its {len(issues)} flag(s) are not categorised (the file is not read)"
            plan.skipped_documents.append({"document": label, "issues": len(issues), "reason": reason})
            continue
        other = planned.get((subject, issues[0].document))
        if other is not None:
            reason = (
                f"Filename {filename!r} and {other!r} would share the report "
                f"{subject}/document_reports/{issues[0].document}.csv; its {len(issues)} flag(s) are "
                f"not categorised. Rename one of the Markdown files and its rows in the report"
            )
            plan.skipped_documents.append({"document": label, "issues": len(issues), "reason": reason})
            continue
        markdown_files[str(md_path)] = _stat(md_path)
        text, problem = _read_markdown(md_path, plan, label)
        if text is None:
            reason = f"{problem}; its {len(issues)} flag(s) are not categorised"
            plan.skipped_documents.append({"document": label, "issues": len(issues), "reason": reason})
            continue
        planned[(subject, issues[0].document)] = filename
        if not text.strip():
            plan.warnings.append(f"{label}: {md_path} is empty; flags are sent without page text")
        plan.files_written += _plan_document(settings, req, subject, filename, text, issues, plan)
        plan.documents[-1].issues = len(issues)
        if progress and len(plan.documents) % 50 == 0:
            progress(f"planned {len(plan.documents)} of {len(grouped)} documents")
    plan.jobs = group_jobs(plan, settings)
    plan.files_written += write_job_specs(plan, settings)
    summary = {
        "documents": [d.__dict__ for d in plan.documents],
        "skipped_documents": plan.skipped_documents,
        "skipped_rows": plan.skipped_rows,
        "warnings": plan.warnings,
        "report": str(settings.report),
    }
    folder = plan_dir(settings)
    plan.files_written += write_if_changed(folder / "plan.json", dumps_json(summary))
    write_if_changed(folder / "stamp.json", dumps_json({"key": key, "files": markdown_files}))
    plan.seconds = time.perf_counter() - started
    return plan


def _plan_document(
    settings: Settings,
    req: dict[str, Any],
    subject: str,
    filename: str,
    text: str,
    issues: list[Issue],
    plan: Plan,
) -> int:
    label = f"{subject}/{filename}"
    doc = split_pages(text)
    if not text.strip():
        doc.pages.clear()
    if doc.duplicate_markers:
        plan.warnings.append(
            f"{label}: page marker(s) {sorted(set(doc.duplicate_markers))[:20]} appear more than once; "
            f"their text is joined"
        )
    if doc.out_of_order:
        plan.warnings.append(f"{label}: page markers are out of order; pages are taken by their numbers")
    pages_of: dict[str, int | None] = {}
    for issue in issues:
        pages_of[issue.key] = _resolve_page(issue, doc, plan, label)
    page_chars = {p: min(len(t), settings.max_page_chars) for p, t in doc.pages.items()}
    document = issues[0].document
    specs = make_batches(
        f"{subject}/{filename}",
        [Planned(i.key, pages_of[i.key]) for i in issues],
        page_chars,
        settings.batch_size,
        settings.max_batch_chars,
        settings.anchor_pages,
    )
    by_key = {i.key: i for i in issues}
    batch_of: dict[str, str] = {}
    fingerprints: dict[str, str] = {}
    written = 0
    wanted_files: set[str] = set()
    for spec in specs:
        batch_issues = [by_key[k] for k in spec.keys]
        entries = []
        for local_id, issue in enumerate(batch_issues):
            batch_of[issue.key] = spec.batch_id
            entry: dict[str, Any] = {
                "local_id": local_id,
                "key": issue.key,
                "page": issue.page,
                "context_page": pages_of[issue.key],
                "rule_id": issue.rule_id,
                "type": issue.type,
                "issue": issue.issue,
                "message": issue.message,
                "suggestions": issue.suggestions,
                "context": issue.context,
                "pass_code": issue.pass_code,
            }
            if settings.provider == "offline":
                entry["hints"] = offline_rules.document_hints(issue, text)
            entries.append(entry)
        pages = []
        for page in spec.pages:
            if page not in doc.pages:
                continue
            page_text = doc.pages[page]
            cut = False
            if len(page_text) > settings.max_page_chars:
                anchors = [
                    pos
                    for i in batch_issues
                    if pages_of[i.key] == page and (pos := locate(page_text, i.context, i.issue)) is not None
                ]
                page_text, cut = cut_page(page_text, anchors, settings.max_page_chars)
            pages.append({"page": page, "text": page_text, "cut": cut})
        payload: dict[str, Any] = {
            "format": PLAN_FORMAT,
            "subject": subject,
            "filename": filename,
            "document": document,
            "batch_id": spec.batch_id,
            "settings": req,
            "max_cell_chars": settings.max_cell_chars,
            "issues": entries,
            "pages": pages,
        }
        payload["fingerprint"] = fingerprints[spec.batch_id] = fingerprint(payload)
        path = batch_path(settings, subject, document, spec.batch_id)
        wanted_files.add(path.name)
        written += write_if_changed(path, dumps_json(payload))
    for stale in batches_dir(settings, subject, document).glob("*.json"):
        if stale.name not in wanted_files:
            stale.unlink()
    batch_ids = [s.batch_id for s in specs]
    manifest = {
        "subject": subject,
        "filename": filename,
        "document": document,
        "batches": batch_ids,
        # Every batch's fingerprint, so that the manifest changes whenever a batch does: it is
        # the only input of the sync categorise jobs (one file per job keeps the DAG small).
        "fingerprints": fingerprints,
        "parts": split_parts(batch_ids, settings.sync_batches_per_job),
        "issues": [
            {
                "issue_id": n,
                "key": issue.key,
                "batch_id": batch_of[issue.key],
                "page": issue.page,
                "issue": issue.issue,
                "highlighted_context": issue.context,
                "pass_code": issue.pass_code,
                "rule_id": issue.rule_id,
                "type": issue.type,
                "message": issue.message,
                "suggestions": issue.suggestions,
            }
            for n, issue in enumerate(issues)
        ],
    }
    written += write_if_changed(manifest_path(settings, subject, document), dumps_json(manifest))
    plan.documents.append(DocumentPlan(subject, filename, document, [s.batch_id for s in specs], len(issues)))
    return written


def group_jobs(plan: Plan, settings: Settings) -> dict[str, list[tuple[str, str, str]]]:
    """Batch mode: pack the batches of each subject into jobs of at most ``max_batches_per_job``.

    Whole documents stay together where they fit, so a finished job completes whole documents.
    """
    jobs: dict[str, list[tuple[str, str, str]]] = {}
    by_subject: dict[str, list[DocumentPlan]] = {}
    for doc in plan.documents:
        by_subject.setdefault(doc.subject, []).append(doc)
    for subject, docs in by_subject.items():
        part, current = 1, []
        for doc in docs:
            refs = [(doc.subject, doc.document, b) for b in doc.batch_ids]
            if current and len(current) + len(refs) > settings.max_batches_per_job:
                jobs[f"{subject}-{part:02d}"] = current
                part, current = part + 1, []
            while len(refs) > settings.max_batches_per_job:
                jobs[f"{subject}-{part:02d}"] = refs[: settings.max_batches_per_job]
                refs = refs[settings.max_batches_per_job :]
                part += 1
            current.extend(refs)
        if current:
            jobs[f"{subject}-{part:02d}"] = current
    return jobs
