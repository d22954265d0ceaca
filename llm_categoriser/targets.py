"""The files each rule needs, from the plan: what the rules' input functions return.

Snakemake calls these while it builds the DAG, once per job; they only look things up in
the plan computed at start-up (docs/DESIGN.md §9).
"""

from __future__ import annotations

from pathlib import Path

from .plan import Plan
from .records import DocumentPlan
from .settings import Settings


class Targets:
    def __init__(self, plan: Plan, settings: Settings) -> None:
        self.plan = plan
        self.settings = settings
        self.layout = settings.layout
        self.documents = {(d.subject, d.document): d for d in plan.documents}
        self.job_of = {ref: job for job, refs in plan.jobs.items() for ref in refs}

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

    def job_batch_files(self, job: str) -> list[str]:
        return [self.layout.batch(*ref) for ref in self.plan.jobs[job]]

    def job_batch_indexes(self, job: str) -> list[int]:
        """Each batch's position in its document (for messages about a pending job)."""
        return [self.document(s, d).batch_ids.index(b) for s, d, b in self.plan.jobs[job]]

    def document_csvs(self) -> list[str]:
        return [self.layout.document_csv(d.subject, d.document) for d in self.plan.documents]

    def document_stats(self) -> list[str]:
        return [self.layout.document_stats(d.subject, d.document) for d in self.plan.documents]

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
