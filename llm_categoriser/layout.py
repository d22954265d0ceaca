"""Where every file of a run lives: the one place that spells a path (docs/DESIGN.md §3).

Paths are relative to the working directory, as Snakemake sees them. Each ``Layout`` method
fills a template; ``Layout.pattern`` gives the same template with the rule wildcards
(``{subject}``, ``{document}``, ``{job}``) left in, for the rules' inputs,
outputs and logs. A run's folders:

* ``<documents_dir>/<subject>/markdown/<filename>``: the documents (input);
* ``<documents_dir>/<subject>/document_reports/<document>.csv``, ``combined-report.csv``,
  ``run-summary.json``: the outputs;
* ``<documents_dir>/report.html``, ``triage.xlsx``, ``languagetool/`` (``disable-rules.txt``,
  per subject ``spelling.txt`` and ``disable-rules.txt``): the results view, built from them;
* ``<data_dir>/plan/``: the plan (``plan.json``, ``stamp.json``, per document
  ``manifest.json``, ``batches.json`` (every batch of the document, one request's content each)
  and, with the cascade, ``cascade.json``;
  ``jobs/<job>.json`` for each job: a group of batches that one categorise job sends in sync
  mode, one remote job carries in batch mode);
* ``<data_dir>/results/<job>.json``: sync mode, one per job;
* ``<data_dir>/results/<subject>/<document>/cascade.json``: the flags the cascade answered locally;
* ``<data_dir>/jobs/<job>/``: one remote job (``handle.json``, ``state.json``,
  ``attempts.json``, ``results.json``);
* ``<data_dir>/ledger/<provider>/<name>.json``: every remote job ever created (``remote_ledger.py``);
* ``<data_dir>/cache/<xx>/<fingerprint>.json``: answers kept per batch fingerprint;
* ``<data_dir>/merged/<subject>/<document>.json``: per-document statistics;
* ``<data_dir>/merge/<job>.json``: what the merge job of a job of the plan wrote (its output);
* ``<data_dir>/cascade/model.npz``: the cascade's classifier, written by ``train``;
* ``<data_dir>/spend/ledger.json``: what the current run has spent, and ``stops.json``: the last
  stop at the cost cap (``costs/ledger.py``);
* ``<data_dir>/logs/<rule>/...``: one log per job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_PATH = PACKAGE_DIR / "config.schema.yaml"
PROMPTS_DIR = PACKAGE_DIR / "prompts"
REPORT_ASSETS_DIR = PACKAGE_DIR / "results_view" / "assets"  # the HTML report's page and libraries
SNAKEFILE = PACKAGE_DIR.parent / "Snakefile"
REPORT_NAME = "language-check-report.csv"
CONFIG_FILE = "config.yaml"
STATE_DIR = ".snakemake"
INSTANCE_LOCK = f"{STATE_DIR}/llm-categoriser.instance"
SNAKEMAKE_LOCKS = f"{STATE_DIR}/locks"
RUN_STAMP = f"{STATE_DIR}/llm-categoriser.run-stamp.json"  # run_stamp.py

# The wildcards of the rules and what each may match.
WILDCARDS = {"subject": r"[^/]+", "document": r"[^/]+", "job": r"[^/]+"}

# {docs} and {data} are filled from the settings; the other fields are rule wildcards.
TEMPLATES = {
    "markdown": "{docs}/{subject}/markdown/{filename}",
    "document_csv": "{docs}/{subject}/document_reports/{document}.csv",
    "document_csvs": "{docs}/*/document_reports/*.csv",
    "combined_csv": "{docs}/combined-report.csv",
    "summary": "{docs}/run-summary.json",
    "report_html": "{docs}/report.html",
    "workbook": "{docs}/triage.xlsx",
    "feedback_dir": "{docs}/languagetool",
    "feedback_rules": "{docs}/languagetool/disable-rules.txt",
    "feedback_words": "{docs}/languagetool/{subject}/spelling.txt",
    "feedback_subject_rules": "{docs}/languagetool/{subject}/disable-rules.txt",
    "plan_dir": "{data}/plan",
    "plan_summary": "{data}/plan/plan.json",
    "plan_stamp": "{data}/plan/stamp.json",
    "manifest": "{data}/plan/{subject}/{document}/manifest.json",
    "batches": "{data}/plan/{subject}/{document}/batches.json",
    # a folder of one file per batch, as plans were written before batches.json: removed when seen
    "old_batches_dir": "{data}/plan/{subject}/{document}/batches",
    "cascade_spec": "{data}/plan/{subject}/{document}/cascade.json",
    "job_specs_dir": "{data}/plan/jobs",
    "job_spec": "{data}/plan/jobs/{job}.json",
    "job_result": "{data}/results/{job}.json",
    "cascade_result": "{data}/results/{subject}/{document}/cascade.json",
    "remote_jobs_dir": "{data}/jobs",
    "remote_job_dir": "{data}/jobs/{job}",
    "handle": "{data}/jobs/{job}/handle.json",
    "job_state": "{data}/jobs/{job}/state.json",
    "attempts": "{data}/jobs/{job}/attempts.json",
    "job_results": "{data}/jobs/{job}/results.json",
    "ledger_dir": "{data}/ledger",
    "ledger_job": "{data}/ledger/{provider}/{entry}.json",
    "ledger_jobs": "{data}/ledger/*/*.json",
    "job_states": "{data}/jobs/*/state.json",
    "cache_dir": "{data}/cache",
    "cascade_model": "{data}/cascade/model.npz",
    "cached_answer": "{data}/cache/{prefix}/{fingerprint}.json",
    "document_stats": "{data}/merged/{subject}/{document}.json",
    "merge_record": "{data}/merge/{job}.json",
    "spend_ledger": "{data}/spend/ledger.json",
    "cap_stops": "{data}/spend/stops.json",
    "log_categorise": "{data}/logs/categorise/{job}.log",
    "log_submit": "{data}/logs/submit/{job}.log",
    "log_fetch": "{data}/logs/fetch/{job}.log",
    "log_merge": "{data}/logs/merge/{job}.log",
    "log_cascade": "{data}/logs/cascade/{subject}/{document}.log",
    "log_combine": "{data}/logs/combine.log",
    "log_results_view": "{data}/logs/results_view.log",
    "log_train": "{data}/logs/train.log",
}


def _path(name: str, *fields: str) -> Callable[..., str]:
    """A ``Layout`` method filling template ``name`` with its positional ``fields``."""

    def fill(self: Layout, *values: object) -> str:
        return self.fill(name, **dict(zip(fields, values, strict=True)))

    fill.__doc__ = f"``{TEMPLATES[name]}``"
    return fill


def _fixed(name: str) -> property:
    """A ``Layout`` property: template ``name``, which has no wildcard."""
    return property(lambda self: self.fill(name), doc=f"``{TEMPLATES[name]}``")


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

    def fill(self, name: str, **fields: object) -> str:
        """The template ``name`` with ``fields`` filled in."""
        return TEMPLATES[name].format(docs=self.docs, data=self.data, **fields)

    def log(self, rule: str, **fields: object) -> str:
        """The log of one job of ``rule``."""
        return self.fill(f"log_{rule}", **fields)

    # documents and outputs
    markdown = _path("markdown", "subject", "filename")
    document_csv = _path("document_csv", "subject", "document")
    document_csvs_glob = _fixed("document_csvs")
    combined_csv = _fixed("combined_csv")
    summary = _fixed("summary")
    # the results view
    report_html = _fixed("report_html")
    workbook = _fixed("workbook")
    feedback_dir = _fixed("feedback_dir")
    feedback_rules = _fixed("feedback_rules")
    feedback_words = _path("feedback_words", "subject")
    feedback_subject_rules = _path("feedback_subject_rules", "subject")
    # the plan
    plan_dir = _fixed("plan_dir")
    plan_summary = _fixed("plan_summary")
    plan_stamp = _fixed("plan_stamp")
    manifest = _path("manifest", "subject", "document")
    batches = _path("batches", "subject", "document")
    old_batches_dir = _path("old_batches_dir", "subject", "document")
    cascade_spec = _path("cascade_spec", "subject", "document")
    job_specs_dir = _fixed("job_specs_dir")
    job_spec = _path("job_spec", "job")
    # results and remote jobs
    job_result = _path("job_result", "job")
    cascade_result = _path("cascade_result", "subject", "document")
    remote_jobs_dir = _fixed("remote_jobs_dir")
    remote_job_dir = _path("remote_job_dir", "job")
    handle = _path("handle", "job")
    job_state = _path("job_state", "job")
    attempts = _path("attempts", "job")
    job_results = _path("job_results", "job")
    ledger_dir = _fixed("ledger_dir")
    ledger_job = _path("ledger_job", "provider", "entry")
    ledger_jobs_glob = _fixed("ledger_jobs")
    job_states_glob = _fixed("job_states")
    cache_dir = _fixed("cache_dir")
    cascade_model = _fixed("cascade_model")
    document_stats = _path("document_stats", "subject", "document")
    merge_record = _path("merge_record", "job")
    # the cost of a run
    spend_ledger = _fixed("spend_ledger")
    cap_stops = _fixed("cap_stops")

    def cached_answer(self, fingerprint: str) -> str:
        return self.fill("cached_answer", prefix=fingerprint[:2], fingerprint=fingerprint)

    # file names inside a folder, for listing it
    @staticmethod
    def file_name(name: str, **fields: object) -> str:
        """The last component of template ``name`` (``job_spec`` -> ``<job>.json``)."""
        return Path(TEMPLATES[name]).name.format(**fields)

    @staticmethod
    def file_glob(name: str) -> str:
        """A glob for every file of template ``name`` in its folder (``job_spec`` -> ``*.json``)."""
        return re.sub(r"\{\w+\}", "*", Path(TEMPLATES[name]).name)
