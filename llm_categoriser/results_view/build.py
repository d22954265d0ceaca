"""The ``results_view`` job: everything the results view holds, from the combined CSV and the
run summary (paths from the layout).

In a large run (its jobs ran in worker processes, docs/DESIGN.md §11, §28) the workbook, the
longest part, is written in a worker process while this thread writes the LanguageTool feedback
and the HTML report, so both cores work; in a run whose submit and fetch jobs (batch mode) or
categorise jobs (sync mode) ran in the forked helper (§7, §11), idle once the answers are in, the
helper writes it. Each part reads
the same two files, so the outputs are the same as when one thread writes them one after another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from .. import remote_helper
from ..layout import Layout
from .flags import load_flags, load_summary
from .html_report import write_report
from .lt_feedback import write_feedback
from .report_data import report_payload
from .workbook import write_workbook


def write_workbook_file(combined_csv: str, summary_json: str, workbook: str) -> float:
    """The workbook alone, from the combined CSV and the run summary; the seconds it took (the
    work of a worker process)."""
    started = time.perf_counter()
    write_workbook(workbook, load_flags(combined_csv), load_summary(summary_json))
    return time.perf_counter() - started


def write_results_view(
    layout: Layout,
    subjects: Iterable[str],
    logger: logging.Logger,
    workbook_apart: Future[float] | None = None,
    apart_in: str = "a worker process",
) -> None:
    """Write the feedback, the report and (unless ``workbook_apart`` is writing it, in the
    process ``apart_in`` names) the workbook."""
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
    if workbook_apart is None:
        mark = time.perf_counter()
        write_workbook(layout.workbook, flags, summary)
        logger.info("wrote %s in %.2f s", layout.workbook, time.perf_counter() - mark)
    else:
        del flags, payload  # not held while waiting
        try:
            seconds = workbook_apart.result()
            logger.info("wrote %s in %.2f s in %s", layout.workbook, seconds, apart_in)
        except remote_helper.HelperDied as exc:  # the helper is gone: written here instead
            logger.warning("%s; writing %s here", exc, layout.workbook)
            seconds = write_workbook_file(layout.combined_csv, layout.summary, layout.workbook)
            logger.info("wrote %s in %.2f s", layout.workbook, seconds)
    logger.info("results view written in %.2f s", time.perf_counter() - started)


def _in_helper(layout: Layout) -> Future[float]:
    """The workbook written by the run's forked helper, waited for in a thread of this process
    (the helper runs a thread's job and hands back its result)."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="results-view-workbook")
    try:
        return executor.submit(
            remote_helper.run, write_workbook_file, layout.combined_csv, layout.summary, layout.workbook
        )
    finally:
        executor.shutdown(wait=False)  # its thread ends once the helper has answered


def run_results_view(layout: Layout, subjects: Iterable[str], log_file: str) -> None:
    from .. import workers
    from ..steps import job_logger

    large = workers.takes_jobs()
    workers.shutdown()  # the last job: the workers' memory goes before the flags are loaded
    apart, apart_in = None, "a worker process"
    if large:  # the workbook in a process of its own, the rest here
        apart = workers.submit_apart(
            write_workbook_file, layout.combined_csv, layout.summary, layout.workbook
        )
    elif remote_helper.takes_jobs():  # the run's helper, forked already (docs/DESIGN.md §7)
        apart, apart_in = _in_helper(layout), "the helper process"
    with job_logger(log_file, "results_view") as logger:
        try:
            write_results_view(layout, subjects, logger, apart, apart_in)
        finally:
            if apart is not None:  # the job ends when the workbook is written (or has failed)
                wait([apart])
