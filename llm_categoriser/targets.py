"""The files each rule needs, from the plan: what the rules' input functions return.

Snakemake calls these while it builds the DAG, once per job; they only look things up in
the plan computed at start-up (docs/DESIGN.md §9).
"""

from __future__ import annotations

from pathlib import Path

from .plan import Plan
from .records import DocumentPlan, MergedDocument
from .settings import Settings

# the merge job of the documents that send nothing (every flag answered by the cascade)
LOCAL_MERGE = "{subject}-00"


def merge_groups(plan: Plan) -> dict[str, list[DocumentPlan]]:
    """The documents each merge job writes: one merge job per job of the plan, holding the
    documents whose first batch that job carries (a document is written by one merge job, which
    also reads the results of any later job that carries the rest of it); a document with no
    batch to send goes to its subject's ``<subject>-00`` (docs/DESIGN.md §12)."""
    job_of = {ref: job for job, refs in plan.jobs.items() for ref in refs}
    groups: dict[str, list[DocumentPlan]] = {}
    for doc in plan.documents:
        first = job_of[(doc.subject, doc.document, doc.batch_ids[0])] if doc.batch_ids else None
        groups.setdefault(merge_job_of(doc.subject, first), []).append(doc)
    return groups


def merge_job_of(subject: str, first_batch_job: str | None) -> str:
    """The merge job of a document of ``subject`` whose first batch is in ``first_batch_job``."""
    return first_batch_job if first_batch_job is not None else LOCAL_MERGE.format(subject=subject)


class Targets:
    def __init__(self, plan: Plan, settings: Settings) -> None:
        self.plan = plan
        self.settings = settings
        self.layout = settings.layout
        self.documents = {(d.subject, d.document): d for d in plan.documents}
        self.job_of = {ref: job for job, refs in plan.jobs.items() for ref in refs}
        self.merges = merge_groups(plan)

    def document(self, subject: str, document: str) -> DocumentPlan:
        return self.documents[(subject, document)]

    def document_results(self, subject: str, document: str) -> list[str]:
        """The results of the jobs that carry the document's batches (sync or batch mode).

        The cascade's answers, when it answered any flag of the document, come first: an audited
        flag's answer from the provider, later in the list, is the one written.
        """
        doc = self.document(subject, document)
        local = [self.layout.cascade_result(doc.subject, doc.document)] if doc.cascaded else []
        jobs = dict.fromkeys(self.job_of[(doc.subject, doc.document, b)] for b in doc.batch_ids)
        if self.settings.mode == "batch":
            return local + [self.layout.job_results(job) for job in jobs]
        return local + [self.layout.job_result(job) for job in jobs]

    def job_batch_indexes(self, job: str) -> list[int]:
        """Each batch's position in its document (for messages about a pending job)."""
        return [self.document(s, d).batch_ids.index(b) for s, d, b in self.plan.jobs[job]]

    def merge_jobs(self) -> list[str]:
        """The records of the merge jobs (the outputs of the merge rule)."""
        return [self.layout.merge_record(job) for job in self.merges]

    def merge_documents(self, job: str) -> list[MergedDocument]:
        """What the merge job ``job`` writes: each of its documents' CSV and statistics."""
        layout = self.layout
        return [
            MergedDocument(
                manifest=layout.manifest(d.subject, d.document),
                results=self.document_results(d.subject, d.document),
                csv=layout.document_csv(d.subject, d.document),
                stats=layout.document_stats(d.subject, d.document),
            )
            for d in self.merges[job]
        ]

    def merge_inputs(self, job: str) -> list[str]:
        """The manifests of the merge job's documents and the results they are made from."""
        documents = self.merge_documents(job)
        results = dict.fromkeys(path for doc in documents for path in doc.results)
        return [doc.manifest for doc in documents] + list(results)

    def reopen_incomplete_merges(self) -> list[str]:
        """Delete the record of every merge job one of whose CSVs or statistics is missing (deleted
        by hand, or by the cost cap), so that Snakemake runs that merge job again: the CSVs are
        not outputs of the rule, since their number differs from job to job."""
        removed = []
        for job, documents in self.merges.items():
            record = Path(self.layout.merge_record(job))
            if record.exists() and not all(
                Path(path).is_file()
                for d in documents
                for path in (
                    self.layout.document_csv(d.subject, d.document),
                    self.layout.document_stats(d.subject, d.document),
                )
            ):
                record.unlink(missing_ok=True)
                removed.append(str(record))
        return removed

    def combined_documents(self) -> list[tuple[str, str]]:
        """The (subject, document) pairs the combined report and the summary are made from, in
        report order: this run's documents and, in a filtered run, every document outside its
        selection that has both its CSV and its statistics from an earlier run, so a filtered
        run never shrinks the combined report (docs/DESIGN.md §25)."""
        planned = {(d.subject, d.document) for d in self.plan.documents}
        order = [(d.subject, d.document, d.selected) for d in self.plan.report_documents] or [
            (d.subject, d.document, True) for d in self.plan.documents
        ]
        return [
            (subject, document)
            for subject, document, selected in order
            if (subject, document) in planned
            or (
                not selected
                and Path(self.layout.document_csv(subject, document)).is_file()
                and Path(self.layout.document_stats(subject, document)).is_file()
            )
        ]

    def combined_files(self) -> tuple[list[str], list[str]]:
        """The CSVs and statistics of ``combined_documents``."""
        documents = self.combined_documents()
        csvs = [self.layout.document_csv(s, d) for s, d in documents]
        stats = [self.layout.document_stats(s, d) for s, d in documents]
        return csvs, stats
