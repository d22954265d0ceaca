"""The record base class and how records are read, written and fingerprinted (docs/DESIGN.md §4)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..atomic import atomic_write_text, dumps_json, write_if_changed
from ..errors import CategoriserError


class RecordError(CategoriserError):
    """A file the pipeline wrote has a shape this version does not read."""


class Record(BaseModel):
    """A file's content; ``fix`` says what to do when an old or foreign file is found."""

    model_config = ConfigDict(extra="forbid")
    fix: ClassVar[str] = "delete it and run again"


R = TypeVar("R", bound=Record)


def fingerprint(payload: Any) -> str:
    """A digest of ``payload`` as canonical JSON."""
    canonical = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"


def parse_record(data: Any, model: type[R], source: str | os.PathLike[str]) -> R:
    """``data`` as ``model``; RecordError naming ``source`` when it has another shape."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        what = (model.__doc__ or model.__name__).strip().splitlines()[0]
        raise RecordError(
            f"{source} is not a {model.__name__} of this version ({_describe(exc)}; expected: {what}). "
            f"It was written by an older or another version: {model.fix}."
        ) from None


def read_record(path: str | os.PathLike[str], model: type[R]) -> R:
    """The record in ``path``; FileNotFoundError if absent, RecordError if of another shape."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{path} is not valid JSON ({exc}): {model.fix}.") from None
    return parse_record(data, model, path)


def record_json(record: BaseModel, indent: int | None = None) -> str:
    data = record.model_dump(mode="json")
    if indent is None:
        return dumps_json(data)
    return json.dumps(data, ensure_ascii=False, indent=indent) + "\n"


def write_record(
    path: str | os.PathLike[str], record: BaseModel, durable: bool = True, indent: int | None = None
) -> None:
    """Write ``record`` atomically (``durable``: see ``atomic.py``; ``indent`` for files people read)."""
    atomic_write_text(path, record_json(record, indent), durable)


def write_record_if_changed(path: str | os.PathLike[str], record: BaseModel, durable: bool = True) -> bool:
    """Write ``record`` unless the file already holds it (its modification time then stays)."""
    return write_if_changed(path, record_json(record), durable)
