"""The stamp of the last complete ``run``: a no-op rerun answered without Snakemake (docs/DESIGN.md §32).

Starting Snakemake costs about a second before any of the workflow runs (its imports), and
parsing and building the DAG more. So the ``run`` verb, after a run that left nothing to do,
writes a stamp: a digest of the command line, the configuration file, the environment variables
that settings and providers read, the code (package, Snakefile, rules, scripts, profiles) and
the listing (path, size, modification time) of every file under the documents and data folders
(logs excepted) and of the report. The next ``run`` with the same command computes the same
digest first, importing nothing but the standard library, and when it matches, prints the
summary of that run and stops. Anything changed, added or deleted (a document, the report, the
configuration, an output, the code, a setting passed on the command line) gives another digest,
and Snakemake runs as before. The stamp holds no setting value and no secret: digests, the two
folders, the report's path and the summary text.

This module imports only the standard library and ``layout`` (which imports nothing else), so
that checking it costs milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from .layout import PACKAGE_DIR, RUN_STAMP

STAMP_FORMAT = 1
# Environment variables that settings or providers read (values of names that look secret are
# left out: a new key does not change what a run writes).
ENV_PREFIXES = ("LLM_", "GEMINI", "GOOGLE", "OPENAI", "MISTRAL", "SNAKEMAKE")
SECRET_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "profiles")
SKIPPED_DATA = ("logs",)


def _files(root: Path, skip: Iterable[str] = ()) -> Iterable[tuple[str, int, int]]:
    """(relative path, size, mtime in ns) of every file below ``root``; hidden entries and the
    top-level folders ``skip`` are left out."""
    skipped = set(skip)
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or (not prefix and entry.name in skipped):
                continue
            name = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), name + "/"))
                else:
                    st = entry.stat()
                    yield name, st.st_size, st.st_mtime_ns
            except OSError:
                continue


def _listing_digest(parts: Iterable[tuple[str, Iterable[tuple[str, int, int]]]]) -> str:
    digest = hashlib.sha256()
    for label, files in parts:
        digest.update(f"\0{label}\0".encode())
        for name, size, mtime in sorted(files):
            digest.update(f"{name}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


def _stat(path: Path) -> list[tuple[str, int, int]]:
    try:
        st = path.stat()
    except OSError:
        return []
    return [(path.name, st.st_size, st.st_mtime_ns)]


def command_key(directory: Path, argv: Sequence[str], snakefile: Path) -> str:
    """Digest of what decides the settings and the code of a run of ``argv`` in ``directory``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith(ENV_PREFIXES) and not any(part in name for part in SECRET_PARTS)
    }
    config = directory / "config.yaml"
    head = {
        "format": STAMP_FORMAT,
        "argv": list(argv),
        "directory": str(directory.resolve()),
        "snakefile": str(snakefile.resolve()),
        "python": [sys.executable, sys.version],
        "config": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
        "env": sorted(env.items()),
    }
    workflow = snakefile.resolve().parent
    code = [("package", _files(PACKAGE_DIR, ("__pycache__",)))]
    for part in WORKFLOW_PARTS:
        path = workflow / part
        code.append((part, _files(path) if path.is_dir() else _stat(path)))
    return hashlib.sha256(json.dumps(head).encode() + _listing_digest(code).encode()).hexdigest()


def state_digest(directory: Path, documents_dir: str, data_dir: str, report: str) -> str:
    """Digest of the listing of every input and output of the run (logs excepted)."""
    return _listing_digest(
        [
            ("documents", _files(directory / documents_dir)),
            ("data", _files(directory / data_dir, SKIPPED_DATA)),
            ("report", _stat(directory / report)),
        ]
    )


def stamp_path(directory: Path) -> Path:
    return directory / RUN_STAMP


def check(directory: Path, argv: Sequence[str], snakefile: Path) -> str | None:
    """The summary of the last complete run when nothing changed since (the run is a no-op);
    None when Snakemake has to run (no stamp, or anything differs)."""
    try:
        stamp = json.loads(stamp_path(directory).read_text(encoding="utf-8"))
        if stamp.get("format") != STAMP_FORMAT or stamp["command"] != command_key(directory, argv, snakefile):
            return None
        state = state_digest(directory, stamp["documents_dir"], stamp["data_dir"], stamp["report"])
        if state != stamp["state"]:
            return None
        return str(stamp["summary"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget(directory: Path) -> None:
    """Remove the stamp (before a run: a run killed half-way must not leave one)."""
    stamp_path(directory).unlink(missing_ok=True)


def record(
    directory: Path,
    argv: Sequence[str],
    snakefile: Path,
    documents_dir: str,
    data_dir: str,
    report: str,
    summary: str,
) -> None:
    """Write the stamp after a run that left nothing to do (its outputs as they are now)."""
    from .atomic import atomic_write_text

    stamp = {
        "format": STAMP_FORMAT,
        "command": command_key(directory, argv, snakefile),
        "documents_dir": documents_dir,
        "data_dir": data_dir,
        "report": report,
        "state": state_digest(directory, documents_dir, data_dir, report),
        "summary": summary,
    }
    path = stamp_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(stamp, indent=1) + "\n", durable=False)
