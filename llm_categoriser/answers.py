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
import os
from pathlib import Path

from pydantic import ValidationError

from .atomic import atomic_write_json, read_json
from .models import BatchResult

log = logging.getLogger(__name__)


def cache_path(data_dir: str | os.PathLike[str], fingerprint: str) -> Path:
    return Path(data_dir) / "cache" / fingerprint[:2] / f"{fingerprint}.json"


def is_complete(result: BatchResult) -> bool:
    return all(item.status in ("ok", "repaired") for item in result.items.values())


def load_answer(
    data_dir: str | os.PathLike[str], fingerprint: str, logger: logging.Logger | None = None
) -> BatchResult | None:
    """The saved answer for the batch with ``fingerprint``, if there is a complete one."""
    path = cache_path(data_dir, fingerprint)
    try:
        data = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        (logger or log).warning("%s is unreadable (%s); the batch is asked again", path, exc)
        return None
    try:
        result = BatchResult.model_validate(data)
    except ValidationError:
        (logger or log).warning("%s is not a batch answer; the batch is asked again", path)
        return None
    if result.fingerprint != fingerprint or not is_complete(result):
        return None
    return result


def save_answer(data_dir: str | os.PathLike[str], result: BatchResult) -> bool:
    """Keep ``result`` (atomically) if it is complete; return whether it was kept."""
    if not is_complete(result):
        return False
    atomic_write_json(cache_path(data_dir, result.fingerprint), result.model_dump(mode="json"))
    return True
