"""Answers already received, kept per batch fingerprint in ``<data_dir>/cache/``.

Both modes read and write it: a sync categorise job answers an unchanged batch from here without
a request, and a batch job (re)submitted after an edit or a dead job only carries the batches
still unanswered. The fingerprint covers everything a request depends on (flags, page text,
provider, model, generation settings, prompt digest), so an entry can only ever be reused for an
identical request, in either mode. Only complete answers are kept (no ``failed`` or ``missing``
flag): what failed is asked again. Snakemake deletes a job's outputs before it runs the job,
which is why the cache lives outside them. Deleting the folder is always safe; it only saves
requests.
"""

from __future__ import annotations

import logging

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
