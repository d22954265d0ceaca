"""``run`` answers a no-op from its stamp, without Snakemake, and never skips a run with work to do."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import REPO, copy_sample

from llm_categoriser import run_stamp
from llm_categoriser.cli import main

pytestmark = pytest.mark.slow

UP_TO_DATE = "Nothing to do: no input, output, setting or code changed"


def run(work: Path, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["run", "--directory", str(work), *args])
    assert code == 0, err.getvalue()
    return out.getvalue()


def skipped(work: Path, *args: str) -> bool:
    """Whether ``run`` answered from the stamp (and printed the last run's summary)."""
    output = run(work, *args)
    assert "Categorised 197 flag(s) in 8 document(s)" in output
    return UP_TO_DATE in output


@pytest.fixture
def stamped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy_sample(tmp_path)
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    # the package's code, as the stamp sees it: a copy this test may change
    code = tmp_path / "package"
    code.mkdir()
    (code / "module.py").write_text("VALUE = 1\n", encoding="utf-8")
    monkeypatch.setattr(run_stamp, "PACKAGE_DIR", code)
    for name in ("LLM_PRIMARY", "LLM_CATEGORISER_BATCH_SIZE", "LLM_FALLBACK"):
        monkeypatch.delenv(name, raising=False)
    assert not skipped(tmp_path)  # the first run runs Snakemake and writes the stamp
    assert skipped(tmp_path)
    return tmp_path


def test_a_changed_document_report_config_output_or_code_runs_snakemake(stamped: Path) -> None:
    work = stamped
    report = work / "Documents" / "language-check-report.csv"
    report.write_text(report.read_text(encoding="utf-8").replace("\n", "\r\n"), encoding="utf-8")
    assert not skipped(work)
    assert skipped(work)

    markdown = next((work / "Documents" / "Music" / "markdown").glob("*.md"))
    markdown.write_text(markdown.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    assert not skipped(work)
    assert skipped(work)

    config = work / "config.yaml"
    os.utime(config)  # touched, same content: the digest of its content is unchanged
    assert skipped(work)
    config.write_text(config.read_text(encoding="utf-8") + "\ncsv_bom: true\n", encoding="utf-8")
    assert not skipped(work)
    assert skipped(work)

    csv = next(work.glob("Documents/*/document_reports/*.csv"))
    csv.unlink()
    assert not skipped(work)

    (work / "package" / "module.py").write_text("VALUE = 2\n", encoding="utf-8")
    assert not skipped(work)
    assert skipped(work)


def test_other_settings_and_other_commands_run_snakemake(stamped: Path, monkeypatch) -> None:
    work = stamped
    assert not skipped(work, "--batch-size", "5")  # another command line
    assert skipped(work, "--batch-size", "5")
    monkeypatch.setenv("LLM_CATEGORISER_BATCH_SIZE", "7")  # a setting from the environment
    assert not skipped(work, "--batch-size", "5")
    # a plain Snakemake run in between changes the outputs: the next run is not skipped
    snakemake = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    options = ["--directory", str(work), "--cores", "1", "--forcerun", "merge", "--config", "csv_bom=true"]
    subprocess.run([*snakemake, *options], cwd=work, check=True, capture_output=True)
    assert not skipped(work, "--batch-size", "5")


def test_a_failed_run_leaves_no_stamp(stamped: Path) -> None:
    work = stamped
    (work / "Documents" / "language-check-report.csv").write_text("not,a,report\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["run", "--directory", str(work)]) != 0
    assert not (work / ".snakemake" / "llm-categoriser.run-stamp.json").exists()
