"""Refuse names from the report that would read or write outside the project folders."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UnsafePathError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a plain file or folder name, else raise UnsafePathError.

    A Subject or Filename is a single path component: no separators, no ``..``, no NUL or
    control characters, not absolute, not hidden. Anything else could escape
    ``Documents/`` or ``data/``. Braces are refused too: Snakemake would read them as
    wildcards in the output paths and stop the whole run.
    """
    if not value or not value.strip():
        raise UnsafePathError(f"{what} is empty")
    if value != value.strip():
        raise UnsafePathError(f"{what} {value!r} has leading or trailing spaces")
    if _CONTROL.search(value):
        raise UnsafePathError(f"{what} {value[:60]!r} contains a NUL or other control character")
    if value.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", value):
        raise UnsafePathError(f"{what} {value[:60]!r} is an absolute path")
    if "/" in value or "\\" in value:
        kind = "a '..' component" if ".." in re.split(r"[/\\]", value) else "a path separator"
        raise UnsafePathError(f"{what} {value[:60]!r} contains {kind}")
    if value in {".", ".."}:
        raise UnsafePathError(f"{what} {value!r} names a folder, not a plain name")
    if value.startswith("."):
        raise UnsafePathError(f"{what} {value[:60]!r} is a hidden name (it starts with '.')")
    if "{" in value or "}" in value:
        raise UnsafePathError(f"{what} {value[:60]!r} contains a brace, which Snakemake reads as a wildcard")
    if len(value.encode("utf-8")) > 200:
        raise UnsafePathError(f"{what} {value[:40]!r}... is longer than 200 bytes")
    return value


def inside(base: str | Path, path: str | Path) -> Path:
    """``path`` (below ``base``) resolved, after checking that it stays inside ``base``."""
    root = Path(base).resolve()
    target = Path(path).resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(f"{os.path.relpath(path, base)!r} resolves outside {base}")
    return target


def normalise_filter(text: str) -> str:
    """Case-insensitive matching in which spaces, hyphens and underscores are equivalent."""
    return re.sub(r"[\s_\-]+", "-", text.strip().lower())
