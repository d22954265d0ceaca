"""Entry points for the Snakemake rules: each reads its inputs, logs to its own file, writes atomically.

They run in-process in Snakemake's thread pool (``run:`` with ``force-use-threads`` in the default
profile), so a job costs no interpreter start-up; each job therefore gets its own logger that
writes only to that job's log file.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .atomic import atomic_write_json, read_json
from .categorise import categorise_batch
from .outputs import merge_document
from .providers import make_provider
from .settings import Settings

_counter = itertools.count(1)  # next() is atomic: jobs run in threads


@contextmanager
def job_logger(log_file: str | Path, name: str) -> Iterator[logging.Logger]:
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"llm_categoriser.job.{next(_counter)}.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        yield logger
    except Exception as exc:
        logger.error("%s: %s", type(exc).__name__, exc)
        raise
    finally:
        handler.close()
        logger.removeHandler(handler)


def run_categorise(batch_file: str, output: str, log_file: str, settings: Settings) -> None:
    with job_logger(log_file, "categorise") as logger:
        started = time.perf_counter()
        batch = read_json(batch_file)
        provider = make_provider(settings)
        result = categorise_batch(batch, provider, settings.max_retries, logger=logger)
        atomic_write_json(output, result.model_dump(mode="json"))
        statuses: dict[str, int] = {}
        for item in result.items.values():
            statuses[item.status] = statuses.get(item.status, 0) + 1
        logger.info(
            "%s/%s %s: %d flag(s) %s, %d request(s) in %.2f s",
            batch["subject"],
            batch["document"],
            batch["batch_id"],
            len(result.items),
            statuses,
            result.requests,
            time.perf_counter() - started,
        )


def run_merge(manifest: str, results: list[str], csv_file: str, stats_file: str, log_file: str) -> None:
    with job_logger(log_file, "merge") as logger:
        stats = merge_document(manifest, results, csv_file, stats_file)
        logger.info("wrote %s: %d flag(s), statuses %s", csv_file, stats["issues"], stats["statuses"])


def run_submit(
    job: str, batch_files: list[str], handle: str, log_file: str, settings: Settings, indexes: list[int]
) -> None:
    from .batchjobs import submit

    with job_logger(log_file, "submit") as logger:
        submit(job, batch_files, handle, settings, logger=logger, indexes=indexes)


def run_fetch(handle: str, batch_files: list[str], results: str, log_file: str, settings: Settings) -> None:
    from .batchjobs import fetch

    with job_logger(log_file, "fetch") as logger:
        fetch(handle, batch_files, results, settings, logger=logger)
