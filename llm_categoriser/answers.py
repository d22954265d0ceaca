"""Answers already received, kept per batch fingerprint in ``<data_dir>/cache/``.

Both modes read and write it: a sync categorise job answers an unchanged batch from here without
a request, and a batch job (re)submitted after an edit or a dead job only carries the batches
still unanswered. The fingerprint covers everything a request depends on (flags, page text,
provider, model, generation settings, prompt digest), so an entry can only ever be reused for an
identical request, in either mode. Only complete answers are kept (no ``failed`` or ``missing``
flag): what failed is asked again. Snakemake deletes a job's outputs before it runs the job,
which is why the cache lives outside them. Deleting the folder is always safe; it only saves
requests.

A fetch of a remote job first writes the job's results file, which holds every answer, and then
hands the new answers to a thread of its process (``save_answers_later``), so that the job ends,
and its documents' merges start, without waiting for one small file per batch; the process waits
for them before it ends (``drain``). A process killed in between loses those entries, never the
answers: a submit of that job takes them back from its results file (``recover_answers``) before
it decides what to send (docs/DESIGN.md §7). An answer that needed requests of its own (asked
again synchronously) is not in any remote job's results: the fetch caches it at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .atomic import atomic_write_text
from .layout import Layout
from .records import BatchResult, RecordError, read_record

log = logging.getLogger(__name__)


def is_complete(result: BatchResult) -> bool:
    return all(item.status in ("ok", "repaired") for item in result.items.values())


def load_answer(layout: Layout, fingerprint: str, logger: logging.Logger | None = None) -> BatchResult | None:
    """The saved answer for the batch with ``fingerprint``, if there is a complete one."""
    path = layout.cached_answer(fingerprint)
    try:
        result = read_record(path, BatchResult)
    except FileNotFoundError:
        return None
    except (OSError, RecordError) as exc:
        (logger or log).warning("%s is unreadable (%s); the batch is asked again", path, exc)
        return None
    if result.fingerprint != fingerprint or not is_complete(result):
        return None
    return result


def save_answer(layout: Layout, result: BatchResult) -> bool:
    """Keep ``result`` (atomically) if it is complete; return whether it was kept."""
    if not is_complete(result):
        return False
    # pydantic's own encoder: one pass, not a dict of the record and then its JSON (the cache is
    # read back as JSON, whatever its spacing; docs/DESIGN.md §27)
    path = layout.cached_answer(result.fingerprint)
    atomic_write_text(path, result.model_dump_json() + "\n", durable=False)
    return True


_writer: ThreadPoolExecutor | None = None  # made in the process that first needs it
_writes: list[Future[int]] = []
_writer_lock = threading.Lock()


def _forget_parents_writer() -> None:
    """In a forked child: the parent's writer thread and its writes are not there."""
    global _writer, _writes, _writer_lock
    _writer, _writes, _writer_lock = None, [], threading.Lock()


os.register_at_fork(after_in_child=_forget_parents_writer)


def save_answers_later(layout: Layout, results: Iterable[BatchResult]) -> None:
    """``save_answer`` for each of ``results``, in a thread of this process; only for answers the
    caller has already written to a file that holds them all (``recover_answers`` reads it).
    ``drain`` waits for them; so does the interpreter's exit (the thread is the executor's)."""
    global _writer
    batch = list(results)
    with _writer_lock:
        if _writer is None:
            _writer = ThreadPoolExecutor(1, thread_name_prefix="answer-cache")
        _writes.append(_writer.submit(_save_all, layout, batch))


def _save_all(layout: Layout, results: list[BatchResult]) -> int:
    kept = 0
    for result in results:
        try:
            kept += save_answer(layout, result)
        except OSError as exc:  # logged here: in the main process nobody drains the writes
            log.warning(
                "answer %s not kept in the cache (%s); a later run recovers or asks it again",
                result.batch_id,
                exc,
            )
    return kept


def drain() -> int:
    """Wait for every answer handed to ``save_answers_later`` to be written; how many were kept.
    One that cannot be written is logged by the writer: its batch is recovered or asked again."""
    with _writer_lock:
        pending, _writes[:] = list(_writes), []
    kept = 0
    for write in pending:
        try:
            kept += write.result()
        except OSError as exc:
            log.warning("answers not kept in the cache (%s); a later run recovers or asks them again", exc)
    return kept


def recover_answers(layout: Layout, results_file: str, fingerprints: Collection[str]) -> set[str]:
    """Keep in the cache the answers to ``fingerprints`` that ``results_file`` (a job's results)
    holds as received (not taken from the cache) and complete; the fingerprints kept. Only those
    are validated; a missing or unreadable file recovers nothing."""
    if not fingerprints:
        return set()
    try:
        data = json.loads(Path(results_file).read_bytes())
        batches = [b for b in data["batches"] if b.get("fingerprint") in fingerprints and not b.get("reused")]
        results = [BatchResult.model_validate(b) for b in batches]
    except FileNotFoundError:
        return set()
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
    ) as exc:  # pydantic's error is a ValueError
        log.warning("%s is unreadable (%s); its answers are not recovered", results_file, exc)
        return set()
    return {result.fingerprint for result in results if save_answer(layout, result)}
