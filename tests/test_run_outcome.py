"""How a failed run is classified: pending fetches only (exit 75) or a failure (exit 1)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llm_categoriser.layout import Layout
from llm_categoriser.records import RemoteJobState, write_record
from llm_categoriser.run_outcome import EXIT_FAILED, EXIT_PENDING, classify, end_of_failed_run, failed_jobs

LOG = """Error in rule fetch:
    message: None
    jobid: 3
    input: data/jobs/Music-01/handle.json
    output: {output}
    log: data/logs/fetch/Music-01.log (check log file(s) for error details)
"""


def pending(layout: Layout, job: str, checked_at: float) -> None:
    message = f"batches/{job} Music/faqs batches 0-1: RUNNING for 3 min"
    state = RemoteJobState(job=job, status="pending", state="RUNNING", message=message, checked_at=checked_at)
    write_record(layout.job_state(job), state)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(str(tmp_path / "Documents"), str(tmp_path / "data"))


def test_only_pending_fetches_is_pending(layout: Layout) -> None:
    started = time.time()
    pending(layout, "Music-01", started + 1)
    status, lines = classify(layout, LOG.format(output=layout.job_results("Music-01")), started)
    assert status == EXIT_PENDING
    assert lines[0].startswith("Pending batch jobs (1), not failed")
    assert "batches/Music-01 Music/faqs batches 0-1: RUNNING for 3 min" in lines[1]


def test_another_failure_or_an_earlier_state_is_a_failure(layout: Layout) -> None:
    started = time.time()
    pending(layout, "Music-01", started + 1)
    log = LOG.format(output=layout.job_results("Music-01")) + "Error in rule merge:\n    output: x.csv\n"
    status, lines = classify(layout, log, started)
    assert status == EXIT_FAILED and "Other jobs failed too" in lines[-1]
    status, lines = classify(layout, LOG.format(output=layout.job_results("Music-01")), started + 10)
    assert (status, lines) == (EXIT_FAILED, [])  # the pending state is from an earlier run


def test_onerror_exits_75_with_the_block(layout: Layout, tmp_path: Path, capsys) -> None:
    started = time.time()
    pending(layout, "Geo-01", started + 1)
    log = tmp_path / "run.log"
    log.write_text(LOG.format(output=layout.job_results("Geo-01")), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        end_of_failed_run(layout, [str(log)], started)
    assert info.value.code == EXIT_PENDING
    assert "rerun the same command later" in capsys.readouterr().out


def test_failed_jobs_reads_rules_and_outputs() -> None:
    jobs = failed_jobs(LOG.format(output="a.json, b.json"))
    assert [(j.rule, j.outputs) for j in jobs] == [("fetch", ["a.json", "b.json"])]


def test_a_provider_error_ends_the_run_in_one_plain_line(layout: Layout) -> None:
    message = "Gemini has no model 'x' (HTTP 404 NOT_FOUND). Check the setting model (...)."
    job = f'RuleException:\nProviderError in file "rules/categorise.smk", line 24:\n{message}\n  File ...\n'
    status, lines = classify(layout, (job + "Error in rule categorise:\n") * 2, time.time())
    assert (status, lines) == (EXIT_FAILED, [f"error: {message}"])
