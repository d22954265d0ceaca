"""Mistakes a user makes on the command line stop the run clearly, before or at the first answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import copy_sample
from support.emulators.gemini import Endpoint, Fault, GeminiEmulator
from support.workflow import read_rows, snakemake

pytestmark = pytest.mark.slow
FAKE_KEY = "AIzaSy-RUN-ERRORS-fake-0d1e"
COMBINED = Path("Documents") / "combined-report.csv"
SUMMARY = Path("Documents") / "run-summary.json"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample corpus after a complete offline run: the combined report covers every document."""
    work = tmp_path_factory.mktemp("finished")
    copy_sample(work)
    snakemake(work)
    return work


def outputs(work: Path) -> dict[Path, bytes]:
    return {p: (work / p).read_bytes() for p in (COMBINED, SUMMARY)}


@pytest.mark.parametrize(
    ("config", "needles"),
    [
        (
            ['subjects=["Geogrphy"]'],
            ["config key subjects: 'Geogrphy' matches no subject", "closest: 'Geography'"],
        ),
        (
            ['subjects=["Geography","Muisc"]'],
            ["'Muisc' matches no subject", "closest: 'Music'"],
        ),
        (
            ['documents=["gcse-geogrpahy"]'],
            ["config key documents: 'gcse-geogrpahy' matches no document", "closest: 'gcse-geography"],
        ),
    ],
    ids=["subject-typo", "one-of-two-subjects", "document-typo"],
)
def test_a_filter_that_matches_nothing_is_an_error_and_changes_nothing(
    finished: Path, config: list[str], needles: list[str]
) -> None:
    before = outputs(finished)
    lines = len(before[COMBINED].splitlines())
    assert lines == 198  # header and every flag of the sample
    proc = snakemake(finished, "--config", *config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for needle in needles:
        assert needle in out, out
    assert "Traceback" not in out and "Building DAG" not in out
    assert outputs(finished) == before


def test_a_missing_documents_folder_is_an_error(tmp_path: Path) -> None:
    copy_sample(tmp_path)
    proc = snakemake(
        tmp_path,
        "--config",
        "documents_dir=Documnets",
        "report=Documents/language-check-report.csv",
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "error: documents folder Documnets not found (config key documents_dir)" in out
    assert not (tmp_path / "Documnets").exists() and not (tmp_path / "data").exists()


def test_a_missing_api_key_is_one_line_when_the_run_is_planned(tmp_path: Path) -> None:
    copy_sample(tmp_path)
    proc = snakemake(tmp_path, "--config", "provider=gemini", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "GEMINI_API_KEY" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr
    assert "Building DAG" not in proc.stderr  # found while planning, before any job


@pytest.mark.parametrize("mode", ["sync", "batch"])
def test_a_model_that_does_not_exist_stops_after_its_first_answer(tmp_path: Path, mode: str) -> None:
    copy_sample(tmp_path)
    with GeminiEmulator() as emu:
        emu.inject(
            Fault.HTTP_ERROR,
            times=None,
            endpoint=[Endpoint.GENERATE_CONTENT, Endpoint.BATCH_GENERATE_CONTENT],
            status=404,
            grpc_status="NOT_FOUND",
            message="models/gemini-2.5-flsh is not found for API version v1beta",
        )
        env = {"GOOGLE_GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": FAKE_KEY}
        proc = snakemake(
            tmp_path,
            "--config",
            "provider=gemini",
            "model=gemini-2.5-flsh",
            f"mode={mode}",
            "--keep-going",
            env=env,
            check=False,
        )
        counts = emu.stats()["endpoint_counts"]
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    model_calls = counts.get(Endpoint.GENERATE_CONTENT, 0) + counts.get(Endpoint.BATCH_GENERATE_CONTENT, 0)
    assert model_calls == 1, counts
    assert "Gemini has no model 'gemini-2.5-flsh'" in out and "setting model" in out, out[-3000:]
    # the run ends with the message once, in one plain line
    plain = [line for line in out.splitlines() if line.startswith("error: Gemini has no model")]
    assert len(plain) == 1 and "setting model" in plain[0], out[-3000:]
    assert not (tmp_path / COMBINED).exists()


def test_an_invalid_key_stops_after_its_first_answer(tmp_path: Path) -> None:
    copy_sample(tmp_path)
    with GeminiEmulator() as emu:
        env = {"GOOGLE_GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": "invalid"}
        proc = snakemake(tmp_path, "--config", "provider=gemini", "--keep-going", env=env, check=False)
        calls = emu.generate_content_calls
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert calls == 1
    assert "rejected the API key" in out and "setting GEMINI_API_KEY" in out


def test_until_merge_does_not_print_an_earlier_summary(finished: Path) -> None:
    stem = next((finished / "Documents" / "Music" / "markdown").glob("*.md"))
    stem.write_text(stem.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    proc = snakemake(finished, "--until", "merge")
    out = proc.stdout + proc.stderr
    assert "Categorised" not in out
    assert "run-summary.json was not rebuilt in this run" in out
    proc = snakemake(finished)
    assert "Categorised 197 flag(s) in 8 document(s)" in proc.stdout + proc.stderr


def test_a_filtered_run_never_shrinks_the_combined_report(finished: Path) -> None:
    before = read_rows(finished / COMBINED)
    music = next((finished / "Documents" / "Music" / "markdown").glob("*.md"))
    music.write_text(music.read_text(encoding="utf-8") + "\nAnother line.\n", encoding="utf-8")
    proc = snakemake(finished, "--config", 'subjects=["Music"]')
    out = proc.stdout + proc.stderr
    after = read_rows(finished / COMBINED)
    assert len(after) == len(before) == 197, out[-2000:]
    assert {r["subject"] for r in after} == {r["subject"] for r in before}
    summary = json.loads((finished / SUMMARY).read_text(encoding="utf-8"))
    assert summary["documents"] == 8 and summary["issues"] == 197
    assert "Categorised 197 flag(s) in 8 document(s)" in out
