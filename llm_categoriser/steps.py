"""Entry points for the Snakemake rules: each reads its inputs, logs to its own file, writes atomically.

They run in-process in Snakemake's thread pool (``run:`` with ``force-use-threads`` in the default
profile, docs/DESIGN.md §11), so a job costs no interpreter start-up; each job therefore gets its
own logger that writes only to that job's log file.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from . import remote_helper, spending, workers
from .costs.usage import Spend
from .layout import Layout
from .outputs import combine, merge_job
from .plan_jobs import planned_batches
from .providers import get_provider
from .records import JobResult, JobSpec, MergedDocument, PlannedBatch, read_record, write_record
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


def job_batches(spec_file: str, settings: Settings) -> tuple[JobSpec, list[PlannedBatch]]:
    """The spec of one job of the plan and its batches, each checked against the fingerprint
    the spec lists (the spec is the jobs' only planning input, docs/DESIGN.md §12); each
    document's batches file is read once."""
    spec = read_record(spec_file, JobSpec)
    layout = settings.layout
    documents: dict[tuple[str, str], dict[str, PlannedBatch]] = {}
    batches = []
    for (subject, document, batch_id), expected in zip(spec.batches, spec.fingerprints, strict=True):
        if (subject, document) not in documents:
            planned = planned_batches(layout, subject, document)
            documents[(subject, document)] = {b.batch_id: b for b in planned}
        batch = documents[(subject, document)].get(batch_id)
        if batch is None or batch.fingerprint != expected:
            raise ValueError(
                f"batch {batch_id} of {layout.batches(subject, document)} changed after {spec_file} "
                f"was written: the plan changed while Snakemake ran; run it again"
            )
        batches.append(batch)
    return spec, batches


def recover_from_batch_mode(layout: Layout, job: str, batches: list[PlannedBatch]) -> int:
    """Put back in the answer cache what a batch-mode fetch of ``job`` received but a killed
    run did not cache (``answers.recover_answers``, docs/DESIGN.md §7), so a sync run does not
    send those batches again; how many. Only a job fetched in batch mode has that file."""
    from .answers import load_answer, recover_answers

    results = layout.job_results(job)
    if not os.path.exists(results):
        return 0
    missing = {b.fingerprint for b in batches if load_answer(layout, b.fingerprint) is None}
    return len(recover_answers(layout, results, missing))


def run_categorise(spec_file: str, output: str, log_file: str, settings: Settings) -> None:
    """Sync mode: categorise the batches of one job of the plan (``plan/jobs/<job>.json``).

    Each batch's answer is kept in the answer cache as soon as it arrives, so a crash loses at
    most the requests in flight, and a batch whose fingerprint is unchanged is answered from
    there without a request (``answers.py``). A provider that calls an API sends the batches
    concurrently under the process's request limiter (``limits.py``).
    """
    from .categorise import categorise_part
    from .fallback import ProviderChain
    from .limits import limiter_for

    remote = get_provider(settings.provider).runs_remotely
    if remote and remote_helper.takes_jobs():  # in the run's helper, beside the others (DESIGN.md §11)
        return remote_helper.run_beside(run_categorise, spec_file, output, log_file, settings)
    if workers.takes_jobs() and not remote:  # pure Python: in a worker process (DESIGN.md §11)
        return workers.run(run_categorise, spec_file, output, log_file, settings)
    with job_logger(log_file, "categorise") as logger:
        started = time.perf_counter()
        spec, batches = job_batches(spec_file, settings)
        layout = settings.layout
        if settings.reuse_answers and remote:  # what a killed batch-mode run left uncached (§7)
            recover_from_batch_mode(layout, spec.job, batches)
        meter = spending.meter(settings)
        results, reused = categorise_part(
            batches,
            ProviderChain.of(settings, logger),  # providers made only when a batch needs one
            layout,
            settings.max_retries,
            reuse=settings.reuse_answers,
            logger=logger,
            limiter=limiter_for(settings) if remote else None,
            meter=meter,
        )
        write_record(output, JobResult(job=spec.job, batches=results), durable=False)
        statuses = Counter(item.status for result in results for item in result.items.values())
        if statuses["over_budget"]:  # the next run redoes this job (and its documents' merges)
            documents = dict.fromkeys((subject, document) for subject, document, _ in spec.batches)
            meter.stopped(output, *(layout.document_stats(*d) for d in documents))
        logger.info(
            "%s: %d batch(es), %d answered from the cache, %d flag(s) %s in %.2f s; %s",
            spec.job,
            len(results),
            reused,
            sum(statuses.values()),
            dict(statuses),
            time.perf_counter() - started,
            sum((r.spend() for r in results), Spend()).describe(),
        )


def run_merge(
    job: str, documents: list[MergedDocument], output: str, log_file: str, bom: bool = False
) -> None:
    """Write the CSVs of the documents of one job of the plan (each only when it changed)."""
    if workers.takes_jobs():  # pure Python: in a worker process (docs/DESIGN.md §11)
        return workers.run(run_merge, job, documents, output, log_file, bom)
    with job_logger(log_file, "merge") as logger:
        record = merge_job(job, documents, output, bom)
        logger.info(
            "%s: %d document(s), %d CSV(s) rewritten: %s",
            job,
            len(record.documents),
            len(record.rewritten),
            ", ".join(record.rewritten) or "none changed",
        )


def run_combine(
    combined: tuple[list[str], list[str]],
    plan_file: str,
    csv_file: str,
    summary_file: str,
    log_file: str,
    ledger_file: str,
    bom: bool,
    started: float,
) -> None:
    """Write the combined CSV and the run summary from every document's CSV and statistics
    (``combined``: the CSVs and their statistics files, in report order)."""
    csvs, stats = combined
    with job_logger(log_file, "combine") as logger:
        summary = combine(
            csvs, stats, plan_file, csv_file, summary_file, ledger_file=ledger_file, bom=bom, started=started
        )
        logger.info("%d flag(s) in %d document(s)", summary.issues, summary.documents)


def _planned(spec_file: str, settings: Settings) -> Callable[[], list[PlannedBatch]]:
    return lambda: job_batches(spec_file, settings)[1]


def run_submit(
    job: str, spec_file: str, handle: str, log_file: str, settings: Settings, indexes: list[int]
) -> None:
    """Batch mode: create the remote job of one job of the plan and write its handle."""
    if remote_helper.takes_jobs():  # in the run's helper, beside the others (docs/DESIGN.md §7)
        return remote_helper.run_beside(run_submit, job, spec_file, handle, log_file, settings, indexes)
    from .remote_jobs import RemoteJobStep, record_failure, submit

    with job_logger(log_file, "submit") as logger, record_failure(settings.layout, job, handle):
        submit(RemoteJobStep(job, _planned(spec_file, settings), handle, settings, logger=logger), indexes)


def run_fetch(job: str, spec_file: str, handle: str, results: str, log_file: str, settings: Settings) -> None:
    """Batch mode: collect the answers of one remote job once it is done (fails while pending)."""
    if remote_helper.takes_jobs():  # in the run's helper, beside the others (docs/DESIGN.md §7)
        _drain_helper_at_exit()
        return remote_helper.run_beside(run_fetch, job, spec_file, handle, results, log_file, settings)
    from .remote_jobs import RemoteJobStep, fetch, record_failure

    with job_logger(log_file, "fetch") as logger, record_failure(settings.layout, job, handle):
        fetch(RemoteJobStep(job, _planned(spec_file, settings), handle, settings, logger=logger), results)


_drain_registered = threading.Lock()


def _drain_helper_at_exit() -> None:
    """Once per process: before the run ends (and the helper with it), the helper writes the
    answers its fetches left to a thread of its own (``answers.save_answers_later``)."""
    if _drain_registered.acquire(blocking=False):
        atexit.register(_drain_helper)  # after multiprocessing's own: it runs before the helper is ended


def _drain_helper() -> None:
    from .answers import drain

    if remote_helper.takes_jobs():
        with suppress(Exception):  # a helper that died took them with it: recovered later (§7)
            remote_helper.run(drain)


def run_train(output: str, log_file: str, settings: Settings) -> None:
    """Train the cascade's classifier on the cached model answers (``cascade/learn.py``)."""
    from .cascade.learn import describe, model_path, train_from_cache

    if Path(output) != model_path(settings):
        raise ValueError(f"the train rule writes {output}, but the cascade reads {model_path(settings)}")
    with job_logger(log_file, "train") as logger:
        model, _cached, path = train_from_cache(settings)
        logger.info("%s\nsaved %s", describe(model), path)


def run_cascade(spec_file: str, output: str, log_file: str) -> None:
    """Write the cascade's answers for one document (decided when the run was planned)."""
    from .cascade.decide import cascade_result
    from .records import CascadeResult, CascadeSpec

    with job_logger(log_file, "cascade") as logger:
        spec = read_record(spec_file, CascadeSpec)
        write_record(output, CascadeResult(batches=[cascade_result(spec)]))
        logger.info("%d flag(s) answered locally by model %s", len(spec.answers), spec.model[:12])
