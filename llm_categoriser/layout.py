"""Where every file of a run lives: the one place that spells a path (docs/DESIGN.md §3).

Paths are relative to the working directory, as Snakemake sees them. Each ``Layout`` method
fills a template; ``Layout.pattern`` gives the same template with the rule wildcards
(``{subject}``, ``{document}``, ``{part}``, ``{job}``) left in, for the rules' inputs,
outputs and logs. A run's folders:

* ``<documents_dir>/<subject>/markdown/<filename>``: the documents (input);
* ``<documents_dir>/<subject>/document_reports/<document>.csv``, ``combined-report.csv``,
  ``run-summary.json``: the outputs;
* ``<data_dir>/plan/``: the plan (``plan.json``, ``stamp.json``, per document
  ``manifest.json`` and ``batches/<batch>.json``, ``jobs/<job>.json`` for batch mode);
* ``<data_dir>/results/<subject>/<document>/part-<n>.json``: sync mode, one per part;
* ``<data_dir>/jobs/<job>/``: one remote job (``handle.json``, ``state.json``,
  ``attempts.json``, ``results.json``);
* ``<data_dir>/cache/<xx>/<fingerprint>.json``: answers kept per batch fingerprint;
* ``<data_dir>/merged/<subject>/<document>.json``: per-document statistics;
* ``<data_dir>/logs/<rule>/...``: one log per job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_PATH = PACKAGE_DIR / "config.schema.yaml"
PROMPTS_DIR = PACKAGE_DIR / "prompts"
SNAKEFILE = PACKAGE_DIR.parent / "Snakefile"
REPORT_NAME = "language-check-report.csv"
CONFIG_FILE = "config.yaml"
STATE_DIR = ".snakemake"
INSTANCE_LOCK = f"{STATE_DIR}/llm-categoriser.instance"
SNAKEMAKE_LOCKS = f"{STATE_DIR}/locks"

# The wildcards of the rules and what each may match.
WILDCARDS = {"subject": r"[^/]+", "document": r"[^/]+", "part": r"[0-9]+", "job": r"[^/]+"}

# {docs} and {data} are filled from the settings; the other fields are rule wildcards.
TEMPLATES = {
    "markdown": "{docs}/{subject}/markdown/{filename}",
    "document_csv": "{docs}/{subject}/document_reports/{document}.csv",
    "document_csvs": "{docs}/*/document_reports/*.csv",
    "combined_csv": "{docs}/combined-report.csv",
    "summary": "{docs}/run-summary.json",
    "plan_dir": "{data}/plan",
    "plan_summary": "{data}/plan/plan.json",
    "plan_stamp": "{data}/plan/stamp.json",
    "manifest": "{data}/plan/{subject}/{document}/manifest.json",
    "batches_dir": "{data}/plan/{subject}/{document}/batches",
    "batch": "{data}/plan/{subject}/{document}/batches/{batch}.json",
    "job_specs_dir": "{data}/plan/jobs",
    "job_spec": "{data}/plan/jobs/{job}.json",
    "part_result": "{data}/results/{subject}/{document}/part-{part}.json",
    "remote_jobs_dir": "{data}/jobs",
    "remote_job_dir": "{data}/jobs/{job}",
    "handle": "{data}/jobs/{job}/handle.json",
    "job_state": "{data}/jobs/{job}/state.json",
    "attempts": "{data}/jobs/{job}/attempts.json",
    "job_results": "{data}/jobs/{job}/results.json",
    "cache_dir": "{data}/cache",
    "cached_answer": "{data}/cache/{prefix}/{fingerprint}.json",
    "document_stats": "{data}/merged/{subject}/{document}.json",
    "log_categorise": "{data}/logs/categorise/{subject}/{document}/part-{part}.log",
    "log_submit": "{data}/logs/submit/{job}.log",
    "log_fetch": "{data}/logs/fetch/{job}.log",
    "log_merge": "{data}/logs/merge/{subject}/{document}.log",
    "log_combine": "{data}/logs/combine.log",
}


@dataclass(frozen=True)
class Layout:
    """The paths of one run, from its ``documents_dir`` and ``data_dir``."""

    docs: str
    data: str

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        return cls(settings.documents_dir, settings.data_dir)

    def pattern(self, name: str) -> str:
        """The template ``name`` with the rule wildcards kept (``{subject}``...)."""
        keep = {w: "{" + w + "}" for w in WILDCARDS}
        return TEMPLATES[name].format(docs=self.docs, data=self.data, **keep)

    def _fill(self, name: str, **fields: object) -> str:
        return TEMPLATES[name].format(docs=self.docs, data=self.data, **fields)

    # documents and outputs
    def markdown(self, subject: str, filename: str) -> str:
        return self._fill("markdown", subject=subject, filename=filename)

    def document_csv(self, subject: str, document: str) -> str:
        return self._fill("document_csv", subject=subject, document=document)

    @property
    def document_csvs_glob(self) -> str:
        return self._fill("document_csvs")

    @property
    def combined_csv(self) -> str:
        return self._fill("combined_csv")

    @property
    def summary(self) -> str:
        return self._fill("summary")

    # the plan
    @property
    def plan_dir(self) -> str:
        return self._fill("plan_dir")

    @property
    def plan_summary(self) -> str:
        return self._fill("plan_summary")

    @property
    def plan_stamp(self) -> str:
        return self._fill("plan_stamp")

    def manifest(self, subject: str, document: str) -> str:
        return self._fill("manifest", subject=subject, document=document)

    def batches_dir(self, subject: str, document: str) -> str:
        return self._fill("batches_dir", subject=subject, document=document)

    def batch(self, subject: str, document: str, batch: str) -> str:
        return self._fill("batch", subject=subject, document=document, batch=batch)

    @property
    def job_specs_dir(self) -> str:
        return self._fill("job_specs_dir")

    def job_spec(self, job: str) -> str:
        return self._fill("job_spec", job=job)

    # results
    def part_result(self, subject: str, document: str, part: int) -> str:
        return self._fill("part_result", subject=subject, document=document, part=part)

    @property
    def remote_jobs_dir(self) -> str:
        return self._fill("remote_jobs_dir")

    def remote_job_dir(self, job: str) -> str:
        return self._fill("remote_job_dir", job=job)

    def handle(self, job: str) -> str:
        return self._fill("handle", job=job)

    def job_state(self, job: str) -> str:
        return self._fill("job_state", job=job)

    def attempts(self, job: str) -> str:
        return self._fill("attempts", job=job)

    def job_results(self, job: str) -> str:
        return self._fill("job_results", job=job)

    @property
    def cache_dir(self) -> str:
        return self._fill("cache_dir")

    def cached_answer(self, fingerprint: str) -> str:
        return self._fill("cached_answer", prefix=fingerprint[:2], fingerprint=fingerprint)

    def document_stats(self, subject: str, document: str) -> str:
        return self._fill("document_stats", subject=subject, document=document)

    # logs
    def log(self, rule: str, **fields: object) -> str:
        return self._fill(f"log_{rule}", **fields)

    # file names inside a folder, for listing it
    @staticmethod
    def file_name(name: str, **fields: object) -> str:
        """The last component of template ``name`` (``batch`` -> ``<batch>.json``)."""
        return Path(TEMPLATES[name]).name.format(**fields)

    @staticmethod
    def file_glob(name: str) -> str:
        """A glob for every file of template ``name`` in its folder (``batch`` -> ``*.json``)."""
        return re.sub(r"\{\w+\}", "*", Path(TEMPLATES[name]).name)
