"""Jobs of the plan: batches grouped into categorise jobs (sync) or remote jobs (batch).

docs/DESIGN.md §12. The grouping is computed once per plan and written as one job spec per job;
the submit rule and the CLI read those specs rather than grouping again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .layout import Layout
from .records import DocumentPlan, JobSpec, PlannedBatch, PlannedBatches, read_record, write_record_if_changed
from .settings import Settings

# The jobs (a categorise job in sync mode, a remote job in batch mode):
# job id -> (subject, document, batch id) of its batches.
JobGroups = dict[str, list[tuple[str, str, str]]]


def write_job_specs(documents: Iterable[DocumentPlan], jobs: JobGroups, layout: Layout) -> int:
    """One file per job listing its batches and their fingerprints, rewritten only when that changes.

    It is the input of the categorise and submit rules: with modification times as the only
    rerun trigger, a job whose batches change must see a newer input, not just a different list
    of inputs.
    """
    written = 0
    fingerprint_of = {
        (doc.subject, doc.document, batch): digest
        for doc in documents
        for batch, digest in zip(doc.batch_ids, doc.fingerprints, strict=True)
    }
    for job, refs in jobs.items():
        spec = JobSpec(job=job, batches=refs, fingerprints=[fingerprint_of[ref] for ref in refs])
        written += write_record_if_changed(layout.job_spec(job), spec, durable=False)
    folder = Path(layout.job_specs_dir)
    if folder.is_dir():
        wanted = {layout.file_name("job_spec", job=job) for job in jobs}
        for stale in folder.glob(layout.file_glob("job_spec")):
            if stale.name not in wanted:
                stale.unlink()
    return written


def planned_batches(layout: Layout, subject: str, document: str) -> list[PlannedBatch]:
    """The planned batches of one document, in order (``plan/<subject>/<document>/batches.json``)."""
    return read_record(layout.batches(subject, document), PlannedBatches).batches


def read_job_specs(layout: Layout, root: Path = Path(".")) -> JobGroups:
    """The remote jobs as the last plan wrote them (what the submit rule sends), below ``root``."""
    folder = root / layout.job_specs_dir
    if not folder.is_dir():
        return {}
    specs = (read_record(path, JobSpec) for path in sorted(folder.glob(layout.file_glob("job_spec"))))
    return {spec.job: [tuple(ref) for ref in spec.batches] for spec in specs}  # type: ignore[misc]


def group_jobs(documents: Iterable[DocumentPlan], settings: Settings) -> JobGroups:
    """Pack the batches of each subject into jobs of at most ``max_batches_per_job`` batches.

    One job is one categorise job in sync mode (its requests go out concurrently) and one remote
    job in batch mode. Whole documents stay together where they fit, so a finished job
    completes whole documents.
    """
    jobs: JobGroups = {}
    by_subject: dict[str, list[DocumentPlan]] = {}
    for doc in documents:
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
