"""Shared fixtures: repository paths, the reference corpus (optional) and sample data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO.parent / "shared" / "corpus"
# the Gemini emulator and SDK client fixtures (``emu``, ``client``) of the emulator tests
pytest_plugins = ["support.gemini_sdk"]
HEADER = "Subject,Filename,Page,Rule ID,Type,Issue,Message,Suggestions,Highlighted Context,Pass Code\n"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    if not (SHARED_CORPUS / "Documents" / "language-check-report.csv").exists():
        pytest.skip(f"reference corpus not found at {SHARED_CORPUS}")
    return SHARED_CORPUS


def write_report(tmp_path: Path, text: str | bytes, name: str = "report.csv") -> Path:
    """A report file with exactly ``text`` (bytes as they are, text as UTF-8 without newline translation)."""
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def write_doc(root: Path, subject: str, filename: str, text: str) -> Path:
    path = root / subject / "markdown" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def copy_sample(dest: Path) -> Path:
    """A private copy of the bundled sample corpus (Documents/ without outputs)."""
    target = dest / "Documents"
    shutil.copytree(
        REPO / "Documents",
        target,
        ignore=shutil.ignore_patterns(
            "document_reports",
            "combined-report.csv",
            "run-summary.json",
            "report.html",
            "triage.xlsx",
            "languagetool",
        ),
    )
    return target


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A workspace holding a private copy of the bundled sample corpus (modules may override it)."""
    copy_sample(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _forget_fatal_provider_answers() -> None:
    """A fatal answer stops later calls of the same process with the same key and model, and a
    429 slows down every later request of the process to the same API: each test starts afresh."""
    from llm_categoriser.limits import forget_limiters
    from llm_categoriser.providers.gemini.client import forget_fatal_answers

    forget_fatal_answers()
    forget_limiters()
