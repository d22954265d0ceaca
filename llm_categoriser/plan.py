"""Plan the run from the report: documents, their flags and their batches.

Runs at Snakemake start-up (docs/DESIGN.md §9: a static DAG computed at parse time, no
checkpoints).
Every planning file is written only when its content changes, so an unchanged batch keeps
its modification time and is not recategorised; a batch file holds everything its request
depends on (flags, page text, provider, model, generation settings, prompt digest), and
its fingerprint decides whether an existing result is still valid.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .encoding import decode_utf8, decode_utf8_lenient
from .errors import ConfigError, UnsafePathError
from .layout import PACKAGE_DIR, Layout
from .lt_report import LoadedReport, load_report
from .models import Issue
from .packing import Planned, make_batches
from .pages import Document, cut_page, find_page, locate, split_pages
from .paths import inside, normalise_filter
from .prompts import load_templates, prompt_chars
from .providers import get_provider
from .records import (
    PLAN_FORMAT,
    DocumentPlan,
    FlagFields,
    JobSpec,
    Manifest,
    ManifestFlag,
    PageText,
    PlannedBatch,
    PlannedFlag,
    PlanStamp,
    PlanSummary,
    RecordError,
    ReportDocument,
    RequestSize,
    SkippedDocument,
    SkippedRow,
    fingerprint,
    read_record,
    write_record_if_changed,
)
from .settings import Settings

log = logging.getLogger(__name__)

# The jobs (a categorise job in sync mode, a remote job in batch mode):
# job id -> (subject, document, batch id) of its batches.
JobGroups = dict[str, list[tuple[str, str, str]]]


@dataclass
class Plan:
    documents: list[DocumentPlan] = field(default_factory=list)
    skipped_documents: list[SkippedDocument] = field(default_factory=list)
    skipped_rows: list[SkippedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    jobs: JobGroups = field(default_factory=dict)
    report_documents: list[ReportDocument] = field(default_factory=list)
    files_written: int = 0
    seconds: float = 0.0
    cached: bool = False
    cascade_line: str = ""  # what the cascade decided (empty when it is off)

    @property
    def batches(self) -> int:
        return sum(len(d.batch_ids) for d in self.documents)

    @property
    def flags(self) -> int:
        return sum(d.flags for d in self.documents)


def write_job_specs(plan: Plan, layout: Layout) -> int:
    """One file per job listing its batches and their fingerprints, rewritten only when that changes.

    It is the input of the categorise and submit rules: with modification times as the only
    rerun trigger, a job whose batches change must see a newer input, not just a different list
    of inputs.
    """
    written = 0
    fingerprint_of = {
        (doc.subject, doc.document, batch): digest
        for doc in plan.documents
        for batch, digest in zip(doc.batch_ids, doc.fingerprints, strict=True)
    }
    for job, refs in plan.jobs.items():
        spec = JobSpec(job=job, batches=refs, fingerprints=[fingerprint_of[ref] for ref in refs])
        written += write_record_if_changed(layout.job_spec(job), spec, durable=False)
    folder = Path(layout.job_specs_dir)
    if folder.is_dir():
        wanted = {layout.file_name("job_spec", job=job) for job in plan.jobs}
        for stale in folder.glob(layout.file_glob("job_spec")):
            if stale.name not in wanted:
                stale.unlink()
    return written


def read_job_specs(layout: Layout, root: Path = Path(".")) -> JobGroups:
    """The remote jobs as the last plan wrote them (what the submit rule sends), below ``root``."""
    folder = root / layout.job_specs_dir
    if not folder.is_dir():
        return {}
    specs = (read_record(path, JobSpec) for path in sorted(folder.glob(layout.file_glob("job_spec"))))
    return {spec.job: [tuple(ref) for ref in spec.batches] for spec in specs}  # type: ignore[misc]


def request_settings(settings: Settings) -> dict[str, Any]:
    """What a request depends on besides its flags and pages (part of the fingerprint)."""
    data: dict[str, Any] = {
        "provider": settings.provider,
        "model": settings.effective_model,
        "prompt": load_templates().digest,
        "max_cell_chars": settings.max_cell_chars,
    }
    data.update(get_provider(settings.provider).fingerprint(settings))
    return data


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


def _selected(report: LoadedReport, settings: Settings) -> dict[tuple[str, str], list[Issue]]:
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


def _read_markdown(path: Path, plan: Plan, label: str) -> tuple[str | None, str]:
    """The Markdown text, or None and why it cannot be used."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, f"Markdown file {path} not found"
    except OSError as exc:
        return None, f"cannot read the Markdown file {path} ({exc.strerror})"
    text, bad = decode_utf8(data)
    if bad is not None:
        plan.warnings.append(f"{label}: {path} is not UTF-8 ({bad.describe()}); undecodable bytes replaced")
        return decode_utf8_lenient(data), ""
    return text, ""


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


CODE_SUFFIXES = (".py", ".md", ".yaml")


def code_files() -> list[Path]:
    """Every file of the package's code, prompts and schema."""
    return sorted(
        path
        for path in PACKAGE_DIR.rglob("*")
        if path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts
    )


@cache
def _code_digest() -> str:
    """Digest of ``code_files``: any change to the package re-plans."""
    digest = hashlib.sha256()
    for path in code_files():
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _stamp_key(settings: Settings) -> str:
    data = {
        "format": PLAN_FORMAT,
        "code": _code_digest(),
        "settings": settings.model_dump(mode="json"),
        "request": request_settings(settings),
        "report": _stat(settings.report),
        "cascade_model": _stat(settings.layout.cascade_model) if settings.cascade else None,
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

    Checking costs a ``stat`` per Markdown file instead of reading them all (docs/DESIGN.md §9); the
    planning files themselves are then known to be current, so nothing is rewritten.
    """
    layout = settings.layout
    try:
        stamp = read_record(layout.plan_stamp, PlanStamp)
        summary = read_record(layout.plan_summary, PlanSummary)
    except (OSError, ValueError, RecordError):  # absent, or written by another version: re-plan
        return None
    if stamp.key != _stamp_key(settings):
        return None
    if any(_stat(path) != value for path, value in stamp.files.items()):
        return None
    plan = Plan(
        documents=summary.documents,
        skipped_documents=summary.skipped_documents,
        skipped_rows=summary.skipped_rows,
        warnings=summary.warnings,
        report_documents=summary.report_documents,
    )
    # One directory listing per document rather than a stat per file (docs/DESIGN.md §9).
    for doc in plan.documents:
        if not os.path.exists(layout.manifest(doc.subject, doc.document)):
            return None
        batches = Path(layout.batches_dir(doc.subject, doc.document))
        if not _has_files(batches, (layout.file_name("batch", batch=b) for b in doc.batch_ids)):
            return None
        if doc.cascaded and not os.path.exists(layout.cascade_spec(doc.subject, doc.document)):
            return None
    plan.jobs = group_jobs(plan, settings)
    if not _has_files(Path(layout.job_specs_dir), (layout.file_name("job_spec", job=j) for j in plan.jobs)):
        return None
    plan.cached = True
    cascaded = sum(d.cascaded for d in plan.documents)
    if settings.cascade:
        plan.cascade_line = f"Cascade: {cascaded} of {plan.flags} flag(s) answered locally (plan unchanged)"
    return plan


def build_plan(
    settings: Settings,
    report: LoadedReport | None = None,
    progress: Callable[[str], None] | None = None,
) -> Plan:
    started = time.perf_counter()
    if not Path(settings.documents_dir).is_dir():
        raise ConfigError(
            f"documents folder {settings.documents_dir} not found (config key documents_dir): it "
            f"holds <Subject>/markdown/*.md and receives the reports. Run in the project folder "
            f"or set documents_dir (config.yaml or --config documents_dir=PATH)."
        )
    if report is None:
        cached = _load_cached_plan(settings)
        if cached is not None:
            cached.seconds = time.perf_counter() - started
            return cached
    key = _stamp_key(settings)
    report = report or load_report(settings.report)
    plan = Plan(skipped_rows=list(report.skipped), warnings=list(report.warnings))
    req = request_settings(settings)
    grouped = _selected(report, settings)
    if settings.subjects or settings.documents:
        chosen = {(subject, issues[0].document) for (subject, _), issues in grouped.items()}
        everything = dict.fromkeys((i.subject, i.document) for i in report.issues)
        plan.report_documents = [
            ReportDocument(subject=s, document=d, selected=(s, d) in chosen) for s, d in everything
        ]
    layout = settings.layout
    decisions = _cascade_decisions(settings, report, grouped)
    if decisions is not None and decisions.problem:
        plan.warnings.append(f"cascade: {decisions.problem}")
    hints = get_provider(settings.provider).document_hints
    markdown_files: dict[str, list[int] | None] = {}
    planned: dict[tuple[str, str], str] = {}  # (subject, document) -> the Filename that has it
    for (subject, filename), issues in grouped.items():
        label = f"{subject}/{filename}"
        try:
            md_path = inside(layout.docs, layout.markdown(subject, filename))
        except UnsafePathError as exc:
            reason = f"{exc}; its {len(issues)} flag(s) are not categorised (the file is not read)"
            plan.skipped_documents.append(SkippedDocument(document=label, issues=len(issues), reason=reason))
            continue
        other = planned.get((subject, issues[0].document))
        if other is not None:
            reason = (
                f"Filename {filename!r} and {other!r} would share the report "
                f"{os.path.relpath(layout.document_csv(subject, issues[0].document), layout.docs)}; "
                f"its {len(issues)} flag(s) are "
                f"not categorised. Rename one of the Markdown files and its rows in the report"
            )
            plan.skipped_documents.append(SkippedDocument(document=label, issues=len(issues), reason=reason))
            continue
        markdown_files[str(md_path)] = _stat(md_path)
        text, problem = _read_markdown(md_path, plan, label)
        if text is None:
            reason = f"{problem}; its {len(issues)} flag(s) are not categorised"
            plan.skipped_documents.append(SkippedDocument(document=label, issues=len(issues), reason=reason))
            continue
        planned[(subject, issues[0].document)] = filename
        if not text.strip():
            plan.warnings.append(f"{label}: {md_path} is empty; flags are sent without page text")
        plan.files_written += _plan_document(
            settings, req, hints, subject, filename, text, issues, plan, decisions
        )
        if progress and len(plan.documents) % 50 == 0:
            progress(f"planned {len(plan.documents)} of {len(grouped)} documents")
    plan.jobs = group_jobs(plan, settings)
    plan.files_written += write_job_specs(plan, layout)
    if decisions is not None:
        plan.cascade_line = decisions.plan_line(plan.flags)
    summary = PlanSummary(
        documents=plan.documents,
        skipped_documents=plan.skipped_documents,
        skipped_rows=plan.skipped_rows,
        warnings=plan.warnings,
        report=str(settings.report),
        report_documents=plan.report_documents,
    )
    plan.files_written += write_record_if_changed(layout.plan_summary, summary, durable=False)
    write_record_if_changed(layout.plan_stamp, PlanStamp(key=key, files=markdown_files), durable=False)
    plan.seconds = time.perf_counter() - started
    return plan


def _cascade_decisions(
    settings: Settings, report: LoadedReport, grouped: dict[tuple[str, str], list[Issue]]
) -> Any:
    """The cascade's decisions (``cascade/decide.py``), or None when it is off."""
    if not settings.cascade:
        return None
    from .cascade.decide import decide

    return decide(settings, report, grouped)


def _plan_document(
    settings: Settings,
    req: dict[str, Any],
    hints: Callable[[Issue, str], dict[str, Any]],
    subject: str,
    filename: str,
    text: str,
    issues: list[Issue],
    plan: Plan,
    decisions: Any = None,
) -> int:
    label = f"{subject}/{filename}"
    layout = settings.layout
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
    sent = issues if decisions is None else decisions.sent(issues)
    specs = make_batches(
        f"{subject}/{filename}",
        [Planned(i.key, pages_of[i.key], i.context) for i in sent],
        page_chars,
        settings.batch_size,
        settings.max_batch_chars,
    )
    by_key = {i.key: i for i in issues}
    batch_of: dict[str, str] = {}
    fingerprints: dict[str, str] = {}
    sizes: list[RequestSize] = []
    written = 0
    wanted_files: set[str] = set()
    for spec in specs:
        batch_issues = [by_key[k] for k in spec.keys]
        flags = []
        for local_id, issue in enumerate(batch_issues):
            batch_of[issue.key] = spec.batch_id
            flags.append(
                PlannedFlag(
                    local_id=local_id,
                    context_page=pages_of[issue.key],
                    hints=hints(issue, text),
                    **FlagFields.fields_of(issue),
                )
            )
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
            pages.append(PageText(page=page, text=page_text, cut=cut))
        batch = PlannedBatch(
            format=PLAN_FORMAT,
            subject=subject,
            filename=filename,
            document=document,
            batch_id=spec.batch_id,
            settings=req,
            max_cell_chars=settings.max_cell_chars,
            flags=flags,
            pages=pages,
        )
        batch.fingerprint = fingerprints[spec.batch_id] = batch.request_fingerprint()
        sizes.append(
            RequestSize(fingerprint=batch.fingerprint, prompt_chars=prompt_chars(batch), flags=len(flags))
        )
        path = Path(layout.batch(subject, document, spec.batch_id))
        wanted_files.add(path.name)
        written += write_record_if_changed(path, batch, durable=False)
    for stale in Path(layout.batches_dir(subject, document)).glob(layout.file_glob("batch")):
        if stale.name not in wanted_files:
            stale.unlink()
    batch_ids = [s.batch_id for s in specs]
    cascaded = 0
    if decisions is not None:
        from .cascade.decide import BATCH_ID

        cascaded, changed = decisions.write(layout, subject, document, issues)
        written += changed
        for issue in issues:
            batch_of.setdefault(issue.key, BATCH_ID)
    elif os.path.exists(layout.cascade_spec(subject, document)):
        os.unlink(layout.cascade_spec(subject, document))
    manifest = Manifest(
        subject=subject,
        filename=filename,
        document=document,
        batches=batch_ids,
        fingerprints=fingerprints,
        flags=[
            ManifestFlag(issue_id=n, batch_id=batch_of[issue.key], **FlagFields.fields_of(issue))
            for n, issue in enumerate(issues)
        ],
        cascade_batch=batch_of_cascade(cascaded),
    )
    written += write_record_if_changed(layout.manifest(subject, document), manifest, durable=False)
    plan.documents.append(
        DocumentPlan(
            subject=subject,
            filename=filename,
            document=document,
            batch_ids=batch_ids,
            fingerprints=[fingerprints[b] for b in batch_ids],
            flags=len(issues),
            cascaded=cascaded,
            requests=sizes,
        )
    )
    return written


def batch_of_cascade(cascaded: int) -> str | None:
    """The manifest's ``cascade_batch``: the batch id of the locally answered flags, if any."""
    if not cascaded:
        return None
    from .cascade.decide import BATCH_ID

    return BATCH_ID


def group_jobs(plan: Plan, settings: Settings) -> JobGroups:
    """Pack the batches of each subject into jobs of at most ``max_batches_per_job`` batches.

    One job is one categorise job in sync mode (its requests go out concurrently) and one remote
    job in batch mode. Whole documents stay together where they fit, so a finished job
    completes whole documents.
    """
    jobs: JobGroups = {}
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
