"""The ``results_view`` job: everything the results view holds, from the combined CSV and the
run summary (paths from the layout)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from ..layout import Layout
from .flags import load_flags, load_summary
from .html_report import write_report
from .lt_feedback import write_feedback
from .report_data import report_payload
from .workbook import write_workbook


def write_results_view(layout: Layout, subjects: Iterable[str], logger: logging.Logger) -> None:
    started = time.perf_counter()
    flags = load_flags(layout.combined_csv)
    summary = load_summary(layout.summary)
    per_subject, disable = write_feedback(layout, flags, subjects)
    logger.info(
        "LanguageTool feedback in %s: %d word(s) to accept in %d subject(s), %d rule(s) to disable",
        layout.feedback_dir,
        sum(len(s.words) for s in per_subject),
        len(per_subject),
        len(disable),
    )
    mark = time.perf_counter()
    payload = report_payload(
        flags,
        summary,
        per_subject,
        disable,
        report_dir=Path(layout.report_html).parent,
        layout=layout,
    )
    size = write_report(layout.report_html, payload)
    logger.info(
        "wrote %s: %d flag(s), %d bytes in %.2f s",
        layout.report_html,
        len(flags),
        size,
        time.perf_counter() - mark,
    )
    mark = time.perf_counter()
    write_workbook(layout.workbook, flags, summary)
    logger.info("wrote %s in %.2f s", layout.workbook, time.perf_counter() - mark)
    logger.info("results view written in %.2f s", time.perf_counter() - started)


def run_results_view(layout: Layout, subjects: Iterable[str], log_file: str) -> None:
    from .. import workers
    from ..steps import job_logger

    workers.shutdown()  # the last job: the worker processes' memory goes before the flags are loaded
    with job_logger(log_file, "results_view") as logger:
        write_results_view(layout, subjects, logger)
