"""Crash-safe file writes: a reader never sees a half-written file.

Every output goes to a temporary file in the same folder, is flushed (and fsync'ed when
``durable``), and is then renamed over the target (atomic on POSIX): a killed process leaves
the old file or the new one, never a mix. ``durable=False`` skips the fsync for state that is
checked when it is read back and can be made again (the plan, the answer cache, job results:
docs/DESIGN.md §27); an fsync costs milliseconds, and thousands of them dominated a run.
``write_if_changed`` leaves an identical file untouched so that its modification time, which
drives Snakemake's reruns, does not move.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_SYNC_THREADS = 16  # fsyncs in flight at once for write_files_if_changed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _open_temp(target: Path) -> tuple[int, str]:
    """A new temporary file beside ``target`` (``.<name>.<random>.tmp``, the shape
    ``sweep_stale_temp_files`` recognises): its descriptor and path."""
    try:
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except FileNotFoundError:  # the folder is made only when missing: most writes go to one that exists
        target.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)


def _write_temp(target: Path, data: bytes, sync: bool) -> str:
    """``data`` in a new temporary file beside ``target`` (fsync'ed when ``sync``); its path."""
    fd, tmp = _open_temp(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, _MODE)  # mkstemp makes 0600 files; outputs get the usual permissions
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> None:
    target = Path(path)
    tmp = _write_temp(target, data, durable)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def dumps_json(data: Any) -> str:
    # indent=None keeps the C encoder: planning ~1,000 files at every start must stay fast
    return json.dumps(data, ensure_ascii=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_text(path, dumps_json(data))


def write_if_changed(path: str | os.PathLike[str], text: str, durable: bool = True) -> bool:
    """Write ``text`` unless the file already holds exactly that; return True if written."""
    target = Path(path)
    data = text.encode("utf-8")
    if _holds(target, data):
        return False
    atomic_write_bytes(target, data, durable)
    return True


def _holds(target: Path, data: bytes) -> bool:
    """Whether ``target`` already holds exactly ``data`` (its size is checked first)."""
    try:
        return target.stat().st_size == len(data) and target.read_bytes() == data
    except FileNotFoundError:
        return False


def write_files_if_changed(
    files: Sequence[tuple[str | os.PathLike[str], str]], durable: bool = True
) -> list[bool]:
    """``write_if_changed`` for several files at once; whether each was written.

    Each changed file is written to its temporary file first; with ``durable`` those are
    fsync'ed side by side (the filesystem's journal commits them together instead of once per
    file, docs/DESIGN.md §27) and each is renamed over its target only once all are on disk,
    so a killed process leaves each target old or new, never half-written.
    """
    wanted: list[tuple[Path, bytes]] = []
    changed: list[bool] = []
    for path, text in files:
        target, data = Path(path), text.encode("utf-8")
        same = _holds(target, data)
        changed.append(not same)
        if not same:
            wanted.append((target, data))
    temps: list[str] = []
    renamed = 0
    try:
        for target, data in wanted:
            temps.append(_write_temp(target, data, durable and len(wanted) == 1))
        if durable and len(temps) > 1:
            with ThreadPoolExecutor(max_workers=min(len(temps), _SYNC_THREADS)) as pool:
                list(pool.map(_fsync_file, temps))
        for tmp, (target, _data) in zip(temps, wanted, strict=False):
            os.replace(tmp, target)
            renamed += 1
    except BaseException:
        for tmp in temps[renamed:]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    return changed


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def sweep_stale_temp_files(*folders: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folders`` (recursively).

    ``atomic_write_bytes`` renames its ``.<name>.<8 random chars>.tmp`` over the target or
    deletes it, unless the process dies in between (SIGKILL, power loss); such leftovers are
    never read, but they pile up. Call this only when no other writer can be running in these
    folders (the workflow does at start-up, while it holds the workspace exclusively). Returns
    the files deleted.
    """
    random_chars = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")  # tempfile's alphabet
    removed: list[Path] = []
    for folder in folders:
        for dirpath, _dirnames, filenames in os.walk(folder):
            for name in filenames:
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                target, dot, suffix = name[1:-4].rpartition(".")
                if not (target and dot and len(suffix) == 8 and set(suffix) <= random_chars):
                    continue
                path = Path(dirpath) / name
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed
