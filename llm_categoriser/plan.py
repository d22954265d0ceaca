"""Plan the run from the report: documents, their flags and their batches.

Runs at Snakemake start-up (docs/DESIGN.md §9: a static DAG computed at parse time, no
checkpoints).
Every planning file is written only when its content changes, so a job spec whose batches are
unchanged keeps its modification time and its job is not rerun; a batch (in its document's
batches file) holds everything its request depends on (flags, page text, provider, model,
generation settings, prompt digest), and its fingerprint decides whether an existing result
is still valid.
"""

from __future__ import annotations

import logging
import multiprocessing
import operator
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import workers
from .atomic import write_if_changed
from .encoding import decode_utf8, decode_utf8_lenient
from .errors import ConfigError, UnsafePathError
from .lt_report import LoadedReport, load_report
from .models import Issue
from .packing import Planned, make_batches
from .pages import Document, cut_page, find_page, locate, split_pages
from .paths import inside
from .plan_cache import current_summary, file_stat, has_files, stamp_key
from .plan_filters import select_issues
from .plan_jobs import JobGroups, group_jobs, write_job_specs
from .prompts import load_templates, prompt_chars
from .providers import get_provider
from .records import (
    PLAN_FORMAT,
    DocumentPlan,
    FlagFields,
    Manifest,
    ManifestFlag,
    PageText,
    PlannedBatch,
    PlannedBatches,
    PlannedFlag,
    PlanStamp,
    PlanSummary,
    RecordError,
    ReportDocument,
    RequestSize,
    SkippedDocument,
    SkippedRow,
    read_record,
    write_record_if_changed,
)
from .settings import Settings

log = logging.getLogger(__name__)


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


def resolve_page(issue: Issue, doc: Document, plan: Plan, label: str) -> int | None:
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


def _cached_plan(settings: Settings, key: str) -> Plan | None:
    """The previous plan, when the report, the Markdown, the settings and the code are unchanged.

    The planning files themselves are then known to be current, so nothing is rewritten
    (docs/DESIGN.md §9, ``plan_cache``).
    """
    summary = current_summary(settings, key)
    if summary is None:
        return None
    plan = Plan(
        documents=summary.documents,
        skipped_documents=summary.skipped_documents,
        skipped_rows=summary.skipped_rows,
        warnings=summary.warnings,
        report_documents=summary.report_documents,
    )
    layout = settings.layout
    plan.jobs = group_jobs(plan.documents, settings)
    if not has_files(layout.job_specs_dir, (layout.file_name("job_spec", job=j) for j in plan.jobs)):
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
    req = request_settings(settings)
    key = stamp_key(settings, req)
    if report is None:
        cached = _cached_plan(settings, key)
        if cached is not None:
            cached.seconds = time.perf_counter() - started
            return cached
    if report is None:
        _warm_workers(settings)
        report = load_report(settings.report)
    plan = Plan(skipped_rows=list(report.skipped), warnings=list(report.warnings))
    grouped = select_issues(report, settings)
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
    # a large corpus is planned in worker processes (the cascade's decisions stay in this one),
    # a mid-sized one by this process and a helper forked from it, taking turns
    flags = sum(len(issues) for issues in grouped.values())
    processes = _planning_workers(flags, decisions)
    helper = _forked_helper(flags, decisions) if processes == 1 else None
    deferred: list[tuple[PlanWork, int]] = []  # what the workers plan, and where its warnings go
    planning: list[Future[list[WorkerPlan]]] = []  # the workers' results, PLAN_CHUNK documents each
    markdown_files: dict[str, list[int] | None] = {}
    planned: dict[tuple[str, str], str] = {}  # (subject, document) -> the Filename that has it
    try:
        for (subject, filename), issues in grouped.items():
            label = f"{subject}/{filename}"
            try:
                md_path = inside(layout.docs, layout.markdown(subject, filename))
            except UnsafePathError as exc:
                reason = f"{exc}; its {len(issues)} flag(s) are not categorised (the file is not read)"
                plan.skipped_documents.append(
                    SkippedDocument(document=label, issues=len(issues), reason=reason)
                )
                continue
            other = planned.get((subject, issues[0].document))
            if other is not None:
                reason = (
                    f"Filename {filename!r} and {other!r} would share the report "
                    f"{os.path.relpath(layout.document_csv(subject, issues[0].document), layout.docs)}; "
                    f"its {len(issues)} flag(s) are "
                    f"not categorised. Rename one of the Markdown files and its rows in the report"
                )
                plan.skipped_documents.append(
                    SkippedDocument(document=label, issues=len(issues), reason=reason)
                )
                continue
            markdown_files[str(md_path)] = file_stat(md_path)
            text, problem = _read_markdown(md_path, plan, label)
            if text is None:
                reason = f"{problem}; its {len(issues)} flag(s) are not categorised"
                plan.skipped_documents.append(
                    SkippedDocument(document=label, issues=len(issues), reason=reason)
                )
                continue
            planned[(subject, issues[0].document)] = filename
            if not text.strip():
                plan.warnings.append(f"{label}: {md_path} is empty; flags are sent without page text")
            if processes > 1 or helper is not None:
                work = (settings, req, subject, filename, str(md_path), _issue_rows(issues))
                deferred.append((work, len(plan.warnings)))
                if len(deferred) % PLAN_CHUNK == 0:  # the workers start while this loop reads on
                    planning.append(_hand_out([w for w, _ in deferred[-PLAN_CHUNK:]], helper, planning))
                continue
            plan.files_written += _plan_document(
                settings, req, hints, subject, filename, text, issues, plan, decisions
            )
            if progress and len(plan.documents) % 50 == 0:
                progress(f"planned {len(plan.documents)} of {len(grouped)} documents")
        if deferred:
            if len(deferred) % PLAN_CHUNK:
                rest = [w for w, _ in deferred[-(len(deferred) % PLAN_CHUNK) :]]
                planning.append(_hand_out(rest, helper, planning))
            _add_planned(plan, deferred, planning)
    finally:
        if helper is not None:
            helper.shutdown(wait=True, cancel_futures=True)
    plan.jobs = group_jobs(plan.documents, settings)
    plan.files_written += write_job_specs(plan.documents, plan.jobs, layout)
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


# A corpus with at least this many flags is planned in worker processes, one document at a time
# (docs/DESIGN.md §9); below it, starting the workers costs more than they save.
PARALLEL_FLAGS = 20_000
# Fewer bytes than a row of the report takes (about 290 on the reference corpus): a report this
# many times PARALLEL_FLAGS long is taken to be large before it is read.
REPORT_BYTES_PER_FLAG = 200
# settings, request settings, subject, Filename, Markdown path, the document's flags (``_issue_rows``)
PlanWork = tuple[Settings, dict[str, Any], str, str, str, list[tuple[Any, ...]]]
# a document planned by a worker: its plan, its warnings, the files written
WorkerPlan = tuple[list[DocumentPlan], list[str], int]
# documents per task of the planning workers: sent as the main process checks them, so the
# workers plan while it reads on (docs/DESIGN.md §9)
PLAN_CHUNK = 4


# From this many flags up to PARALLEL_FLAGS, a process with no other thread forks one helper
# that plans documents beside it (docs/DESIGN.md §9): a fork is cheap where a spawned worker is
# slow to start, and the second core is idle while the workflow is parsed.
HELPER_FLAGS = 2_000
# chunks handed to the helper and not yet planned: with two, the next one waits for it whenever
# it finishes one, while this process plans the chunks that come meanwhile
HELPER_QUEUE = 2


def _forked_helper(flags: int, decisions: Any) -> ProcessPoolExecutor | None:
    """A process forked from this one that plans part of a mid-sized corpus, or None.

    Only where forking is safe and pays: more than one core given, no thread but this one (a
    fork copies no other thread, so a lock another thread held would stay held in the child;
    Snakemake has started none while it parses the workflow), and no cascade, whose decisions
    are made over the whole corpus in this process.
    """
    if decisions is not None or not HELPER_FLAGS <= flags < PARALLEL_FLAGS or workers.cores() < 2:
        return None
    if not _only_thread() or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("fork"), initializer=workers._ignore_interrupts
    )


def _only_thread() -> bool:
    return threading.active_count() == 1


def _hand_out(
    works: list[PlanWork], helper: ProcessPoolExecutor | None, planning: list[Future[list[WorkerPlan]]]
) -> Future[list[WorkerPlan]]:
    """Plan ``works``: in the large run's workers; with a ``helper``, there while fewer than
    ``HELPER_QUEUE`` of its chunks wait, else here at once (the results are the same)."""
    if helper is None:
        return workers.pool().submit(_plan_some, works)
    if sum(not future.done() for future in planning) < HELPER_QUEUE:  # those here are done
        return helper.submit(_plan_some, works)
    here: Future[list[WorkerPlan]] = Future()
    here.set_result(_plan_some(works))
    return here


def _planning_workers(flags: int, decisions: Any) -> int:
    """How many processes plan the documents (1: this one, in order)."""
    if decisions is not None or flags < PARALLEL_FLAGS:
        return 1
    return workers.size()


def _warm_workers(settings: Settings) -> None:
    """Start the planning workers while the report is read when it is large enough to be planned
    in them (docs/DESIGN.md §9): judged by its size, about ``REPORT_BYTES_PER_FLAG`` a flag."""
    if settings.cascade or settings.subjects or settings.documents:
        return  # planned in this process, or perhaps only a few documents of the report
    try:
        size = os.path.getsize(settings.report)
    except OSError:
        return  # load_report says what is wrong
    if size >= PARALLEL_FLAGS * REPORT_BYTES_PER_FLAG:
        workers.warm((__name__,))


def _plan_one(work: PlanWork) -> WorkerPlan:
    """Plan one document in a worker process: its plan, its warnings and the files written.

    The Markdown is read again here (the main process only checked it), so that the texts of
    the whole corpus are never held at once nor sent between processes.
    """
    settings, req, subject, filename, md_path, rows = work
    issues = _issues_of(rows)
    local = Plan()
    text, _problem = _read_markdown(Path(md_path), Plan(), f"{subject}/{filename}")  # warned already
    hints = get_provider(settings.provider).document_hints
    written = _plan_document(settings, req, hints, subject, filename, text or "", issues, local)
    return local.documents, local.warnings, written


# The flags go to the workers as the values of their fields: pickling the pydantic models
# themselves costs more, in this process, while the workers plan (docs/DESIGN.md §9).
_ISSUE_FIELDS = tuple(Issue.model_fields)
_issue_values = operator.attrgetter(*_ISSUE_FIELDS)


def _issue_rows(issues: list[Issue]) -> list[tuple[Any, ...]]:
    return [_issue_values(issue) for issue in issues]


def _issues_of(rows: list[tuple[Any, ...]]) -> list[Issue]:
    """The flags ``_issue_rows`` took apart (validated when the report was read)."""
    return [Issue.model_construct(**dict(zip(_ISSUE_FIELDS, row, strict=True))) for row in rows]


def _plan_some(works: list[PlanWork]) -> list[WorkerPlan]:
    return [_plan_one(work) for work in works]


def _add_planned(
    plan: Plan, deferred: list[tuple[PlanWork, int]], planning: list[Future[list[WorkerPlan]]]
) -> None:
    """Add the documents the workers planned to ``plan``, in order, each document's warnings where
    planning it in this process would have put them."""
    results = (one for future in planning for one in future.result())
    shift = 0
    for (_work, warn_at), (documents, warnings, written) in zip(deferred, results, strict=True):
        plan.documents.extend(documents)
        plan.warnings[warn_at + shift : warn_at + shift] = warnings
        shift += len(warnings)
        plan.files_written += written


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
        pages_of[issue.key] = resolve_page(issue, doc, plan, label)
    page_chars = {p: min(len(t), settings.max_page_chars) for p, t in doc.pages.items()}
    document = issues[0].document
    sent = issues if decisions is None else decisions.sent(issues)
    packing = f"batch_size={settings.batch_size} max_batch_chars={settings.max_batch_chars}"
    specs = make_batches(
        f"{subject}/{filename}",
        [Planned(i.key, pages_of[i.key], i.context) for i in sent],
        page_chars,
        settings.batch_size,
        settings.max_batch_chars,
        previous_batches(layout.manifest(subject, document), packing),
    )
    by_key = {i.key: i for i in issues}
    fields_of = {i.key: FlagFields.fields_of(i) for i in issues}  # for its batch and its manifest
    batch_of: dict[str, str] = {}
    fingerprints: dict[str, str] = {}
    sizes: list[RequestSize] = []
    written = 0
    stamped: list[dict[str, Any]] = []  # each batch as it is dumped, for the document's batches file
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
                    **fields_of[issue.key],
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
        stamped.append(batch.stamp())
        fingerprints[spec.batch_id] = batch.fingerprint
        sizes.append(
            RequestSize(fingerprint=batch.fingerprint, prompt_chars=prompt_chars(batch), flags=len(flags))
        )
    # one file for the document's batches, rewritten when one of them changed (docs/DESIGN.md §9)
    batches_file = layout.batches(subject, document)
    if stamped:
        content = PlannedBatches.text(subject, document, stamped)
        written += write_if_changed(batches_file, content, durable=False)
    else:  # every flag answered by the cascade: nothing to send
        Path(batches_file).unlink(missing_ok=True)
    if os.path.isdir(layout.old_batches_dir(subject, document)):  # a plan of the older layout
        shutil.rmtree(layout.old_batches_dir(subject, document))
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
            ManifestFlag(issue_id=n, batch_id=batch_of[issue.key], **fields_of[issue.key])
            for n, issue in enumerate(issues)
        ],
        cascade_batch=batch_of_cascade(cascaded),
        packing=packing,
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


def previous_batches(manifest_path: str, packing: str) -> list[list[str]]:
    """The flag keys of each batch the document's last plan made with the same packing settings.

    Packing keeps those batches a change does not touch (docs/DESIGN.md §8). No manifest, one
    of another shape or one packed with other settings: no history, the document is packed afresh.
    """
    try:
        manifest = read_record(manifest_path, Manifest)
    except (OSError, RecordError):
        return []
    if manifest.packing != packing:
        return []
    keys: dict[str, list[str]] = {batch_id: [] for batch_id in manifest.batches}
    for flag in manifest.flags:
        if flag.batch_id in keys:
            keys[flag.batch_id].append(flag.key)
    return [batch for batch in keys.values() if batch]


def batch_of_cascade(cascaded: int) -> str | None:
    """The manifest's ``cascade_batch``: the batch id of the locally answered flags, if any."""
    if not cascaded:
        return None
    from .cascade.decide import BATCH_ID

    return BATCH_ID
