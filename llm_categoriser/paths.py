"""Refuse names from the report that would read or write outside the project folders."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import UnsafePathError

_BAD = re.compile(r"[\x00-\x1f/\\]")


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a plain file or folder name, else raise UnsafePathError.

    A Subject or Filename is a single path component: no separators, no ``..``, no NUL or
    control characters, not absolute, not hidden. Anything else could escape
    ``Documents/`` or ``data/``.
    """
    if not value or not value.strip():
        raise UnsafePathError(f"{what} is empty")
    if value != value.strip():
        raise UnsafePathError(f"{what} {value!r} has leading or trailing spaces")
    if _BAD.search(value):
        raise UnsafePathError(f"{what} {value!r} contains a path separator or control character")
    if value in {".", ".."} or value.startswith("."):
        raise UnsafePathError(f"{what} {value!r} is not a plain name")
    if len(value.encode("utf-8")) > 200:
        raise UnsafePathError(f"{what} {value[:40]!r}... is longer than 200 bytes")
    return value


def inside(base: str | Path, *parts: str) -> Path:
    """Join ``parts`` below ``base`` and check that the result stays inside it."""
    root = Path(base).resolve()
    target = root.joinpath(*parts).resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(f"{'/'.join(parts)!r} resolves outside {base}")
    return target


def normalise_filter(text: str) -> str:
    """Case-insensitive matching in which spaces, hyphens and underscores are equivalent."""
    return re.sub(r"[\s_\-]+", "-", text.strip().lower())
