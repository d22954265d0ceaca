"""The benchmark table's ratios to the earlier tool: measured in the same run where it ran
(``run_benchmarks.py --earlier``), else the issue's fixed numbers, said so (benchmarks/)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, copy_sample

sys.path.insert(0, str(REPO / "benchmarks"))

from bench_earlier import (
    EARLIER,
    ENTRY,
    EarlierTool,
    batch_flow,
    batch_problems,
    closing_summary,
    earlier_reference,
    left_out,
    sync_flow,
    sync_problems,
)
from bench_rows import TableRows
from bench_table import earlier_line


def run(wall: float, **extra: Any) -> dict[str, Any]:
    return {"wall": wall, "rc": 0, "cpu_s": wall, "rss_mb": 100.0, "phases": {}, **extra}


def ours(wall: float) -> dict[str, Any]:
    """One of our sync flows (cold, no-op, edit) as ``bench_sections.sync_flow`` records it."""
    calls = {"generate_content_calls": 621}
    return {
        "cold": run(wall),
        "noop": run(0.5),
        "edited": run(2.0, jobs={"categorise": 1}, batches_resent=1),
        "emulator": {"cold": calls, "edit": {"generate_content_calls": 1}},
    }


def our_batch(lifecycle: float) -> dict[str, Any]:
    half = lifecycle / 2
    return {
        "lifecycle_s": lifecycle,
        "submit": run(half),
        "complete_all_s": 0.0,
        "fetch": run(half),
        "jobs_created": 25,
        "largest_payload_bytes": 1e6,
        "http_requests": 76,
    }


def theirs(wall: float, noop: float = 3.0, requests: int = 651) -> dict[str, Any]:
    """One of the earlier tool's sync flows as ``bench_earlier.sync_flow`` records it."""
    return {
        "cold": run(wall),
        "noop": run(noop),
        "written": {"rows": 5603, "documents": 182, "failed_batch_files": 0},
        "emulator": {"cold": {"generate_content_calls": requests}, "noop": {"http_requests": 0}},
    }


def their_batch(lifecycle: float) -> dict[str, Any]:
    return {
        "lifecycle_s": lifecycle,
        "submit": run(7.0),
        "complete_all_s": 0.2,
        "fetch": run(lifecycle - 7.2),
        "jobs_created": 651,
        "http_requests": 1953,
        "written": {"rows": 5603},
    }


def results(earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "gemini": {"latency_0": [ours(w) for w in (8.0, 9.0, 10.0)], "latency_0.5": [ours(20.0)]},
        "batch": {"latency_0": [our_batch(8.0), our_batch(9.0), our_batch(10.0)]},
    }
    if earlier is not None:
        out["earlier"] = {"tool": {"path": "/x", "commit": "3f341a0"}, **earlier}
    return out


def test_without_the_earlier_tool_the_ratios_divide_by_the_issue_numbers() -> None:
    rows, verdicts = TableRows(results()).build()
    assert verdicts["sync_instant"]["value"] == pytest.approx(9.0 / EARLIER["sync_instant_s"])
    assert verdicts["sync_instant"] == {
        "met": True,
        "value": verdicts["sync_instant"]["value"],
        "same_run": False,
    }
    assert verdicts["batch"]["met"] is False  # 9 s against 0.1 x 86.1 s
    names = [r["name"] for r in rows]
    assert any("9.7 s: the issue's number, not measured in this run" in n for n in names)
    assert not any(n.startswith("Earlier tool") for n in names)
    assert "not measured in this run" in earlier_line(results())


def test_with_the_earlier_tool_in_the_run_the_ratios_divide_by_its_medians() -> None:
    """The same numbers of ours, judged against the earlier tool of the same run: the verdicts
    change both ways (a slower earlier tool here, a faster one there)."""
    same = results(
        {
            "gemini": {"latency_0": [theirs(6.0), theirs(5.0), theirs(7.0)], "latency_0.5": [theirs(330.0)]},
            "batch": [their_batch(100.0), their_batch(80.0), their_batch(95.0)],
            "batch_latency": 0,
        }
    )
    rows, verdicts = TableRows(same).build()
    assert verdicts["sync_instant"]["value"] == pytest.approx(9.0 / 6.0)
    assert verdicts["sync_instant"]["met"] is False and verdicts["sync_instant"]["same_run"] is True
    assert verdicts["sync_half"]["value"] == pytest.approx(20.0 / 330.0)
    assert verdicts["batch"]["met"] is True  # 9 s against 0.1 x 95 s
    by_name = {r["name"]: r for r in rows}
    assert by_name["Batch lifecycle total (0 s latency)"]["target"] == "<= 9.5 s (0.1x)"
    assert "6 s, median of 3 in this run" in next(
        n for n in by_name if n.startswith("  ratio to the earlier")
    )
    assert by_name["Earlier tool, same emulator (0 s latency): sync run, cold"]["median"] == 6.0
    assert by_name["Earlier tool: its rerun with every batch done (same command)"]["median"] == 3.0
    assert "alternating with ours" in earlier_line(same) and "3f341a0" in earlier_line(same)


def test_the_most_requests_in_flight_are_shown_where_the_run_counted_them() -> None:
    counted = results({"gemini": {"latency_0": [theirs(6.0)]}})
    for flow in counted["gemini"]["latency_0"]:
        flow["emulator"]["cold"]["peak_in_flight"] = 32
    counted["earlier"]["gemini"]["latency_0"][0]["emulator"]["cold"]["peak_in_flight"] = 1
    by_name = {r["name"]: r for r in TableRows(counted).build()[0]}
    assert by_name["  most requests in flight at once (0 s)"]["median"] == 32
    assert by_name["  its most requests in flight at once (0 s)"]["median"] == 1
    # a run recorded before they were counted (the 0.5 s flows here) shows no such row
    assert "  most requests in flight at once (0.5 s)" not in by_name
    # no offline section in this run: no offline memory row either
    assert "Peak RSS, Snakemake process (gemini cold, x1)" in by_name
    assert "Peak RSS, Snakemake process (offline cold, x1)" not in by_name


def test_each_number_falls_back_alone() -> None:
    """Only the batch lifecycle measured: the sync ratios keep the issue's numbers."""
    refs = earlier_reference(results({"gemini": {}, "batch": [their_batch(70.0)]}))
    assert refs["batch_lifecycle_s"].value == 70.0 and refs["batch_lifecycle_s"].same_run
    assert refs["sync_instant_s"].value == EARLIER["sync_instant_s"] and not refs["sync_instant_s"].same_run
    assert refs["sync_half_s"].value == EARLIER["sync_half_s"] and not refs["sync_half_s"].same_run
    refs = earlier_reference(results({"gemini": {"latency_0": [theirs(6.0, requests=640)]}}))
    assert refs["requests"].value == 640 and refs["noop_s"].value == 3.0
    assert not refs["sync_half_s"].same_run and not refs["batch_lifecycle_s"].same_run


def their_checked_sync(requests: int = 651, rows: int = 5603, given_up: int = 0, rerun: int = 0) -> dict:
    """An earlier-tool sync flow as ``sync_flow`` records it before ``sync_problems``."""
    flow = theirs(6.0, requests=requests)
    flow["cold"]["summary"] = {"total_batches": 651, "total_issues": 5603, "processed": 651}
    flow["written"] = {"rows": rows, "documents": 182, "failed_batch_files": given_up}
    flow["emulator"]["noop"] = {"http_requests": rerun}
    return flow


def test_a_sync_run_of_the_earlier_tool_that_did_not_do_the_whole_job_is_named() -> None:
    assert sync_problems(their_checked_sync()) == []
    assert "653 requests for 651 batches" in sync_problems(their_checked_sync(requests=653))[0]
    assert "5600 rows written for 5603 flags" in sync_problems(their_checked_sync(rows=5600))[0]
    assert "2 batch(es) given up" in sync_problems(their_checked_sync(given_up=2))[0]
    assert "its rerun sent 3 request(s)" in sync_problems(their_checked_sync(rerun=3))[0]


def test_a_batch_lifecycle_of_the_earlier_tool_that_did_not_do_the_whole_job_is_named() -> None:
    flow = their_batch(70.0)
    flow["submit"]["summary"] = {"total_batches": 651, "created_jobs": 651}
    flow["fetch"]["summary"] = {"checked": 651, "completed": 651, "failed": 0, "still_pending": 0}
    flow["written"] = {"rows": 5603, "failed_batch_files": 0}
    assert batch_problems(flow, 5603) == [] and batch_problems(flow, None) == []
    assert batch_problems(flow, 5604) == ["5603 rows written for 5604 flags"]
    flow["fetch"]["summary"]["still_pending"] = 3
    assert batch_problems(flow, None) == ["fetch: 651 completed, 0 failed, 3 still pending of 651"]
    flow["jobs_created"] = 650
    assert "651 jobs reported and 650 created for 651 batches" in batch_problems(flow, None)[0]


def test_runs_of_the_earlier_tool_with_problems_are_left_out_of_the_ratios() -> None:
    bad = theirs(2.0, noop=0.1, requests=700)
    bad["problems"] = ["700 requests for 651 batches (a batch asked again or not at all)"]
    bad_batch = their_batch(10.0)
    bad_batch["problems"] = ["earlier tool earlier-batch-r0-fetch: exit code 1"]
    same = results(
        {
            "gemini": {"latency_0": [theirs(6.0), bad, theirs(7.0)], "latency_0.5": [bad]},
            "batch": [bad_batch],
        }
    )
    refs = earlier_reference(same)
    assert refs["sync_instant_s"].value == pytest.approx(6.5) and refs["sync_instant_s"].n == 2
    assert refs["requests"].value == 651 and refs["noop_s"].value == 3.0
    assert not refs["sync_half_s"].same_run and not refs["batch_lifecycle_s"].same_run
    assert left_out(same) == 3
    line = earlier_line(same)
    assert "in this run for: sync with instant answers, no-op rerun" in line
    assert "by the issue's numbers for: sync at 0.5 s per request, batch lifecycle" in line
    assert "3 of its runs did not do the whole job" in line
    only_bad = results({"gemini": {"latency_0": [bad]}, "batch": [bad_batch]})
    assert "not measured in this run (2 of its runs did not do the whole job" in earlier_line(only_bad)


def test_closing_summary_reads_its_last_summary_block() -> None:
    output = (
        "Summary:\n  Processed: 1\n"
        + "x\n" * 3
        + ("=====\nSummary:\n  Total batches: 651\n  Processed: 651\n  Skipped (already done): 0\n=====\n")
    )
    assert closing_summary(output) == {"total_batches": 651, "processed": 651, "skipped_already_done": 0}
    assert closing_summary("no summary") == {}


def test_a_folder_that_is_not_the_earlier_tool_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a checkout of the earlier tool"):
        EarlierTool.from_args(str(tmp_path), sys.executable)


def test_a_python_that_cannot_run_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / ENTRY).parent.mkdir(parents=True)
    (tmp_path / ENTRY).write_text("", encoding="utf-8")
    missing = tmp_path / "no-such-venv" / "bin" / "python"
    with pytest.raises(ValueError, match=f"cannot run the earlier tool's Python {missing}"):
        EarlierTool.from_args(str(tmp_path), str(missing))


def test_a_failing_command_of_the_earlier_tool_is_recorded_and_the_benchmark_goes_on(
    tmp_path: Path,
) -> None:
    """A checkout whose categoriser cannot start: its run is recorded with the error and left out
    of the ratios, instead of ending the whole benchmark."""
    import argparse

    from bench_sections import Context
    from bench_support import Emulator

    copy_sample(tmp_path / "corpus")
    ctx = Context(
        argparse.Namespace(quick=True, reps=1, wait_quiet=0.0, keep=False), tmp_path / "corpus", tmp_path
    )
    broken = EarlierTool(tmp_path / "not-the-tool", sys.executable)
    with Emulator(0.0) as emu:
        sync = sync_flow(ctx, broken, emu, 0)
        batch = batch_flow(ctx, broken, emu, 0)
    assert "earlier-sync-0s-r0-cold: exit code 1" in sync["problems"][0]
    assert "earlier-batch-r0-submit: exit code 1" in batch["problems"][0]
    assert "No module named" in sync["error"]
    assert (tmp_path / "logs" / "earlier-sync-0s-r0-cold.log").is_file()
    assert not (tmp_path / "work" / "earlier-sync-0s-r0").exists()


# --------------------------------------------------------------------------- with a checkout


@pytest.fixture(scope="module")
def earlier_tool() -> EarlierTool:
    """A checkout named by ``BENCH_EARLIER`` (and ``BENCH_EARLIER_PYTHON``); skipped without one."""
    path = os.environ.get("BENCH_EARLIER")
    if not path:
        pytest.skip("no checkout of the earlier tool (set BENCH_EARLIER=PATH [BENCH_EARLIER_PYTHON=PY])")
    try:
        return EarlierTool.from_args(path, os.environ.get("BENCH_EARLIER_PYTHON"))
    except ValueError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_the_earlier_tool_categorises_the_sample_corpus_against_the_emulator(
    earlier_tool: EarlierTool, tmp_path: Path
) -> None:
    """Its sync run, rerun and batch lifecycle on the sample corpus: one request per batch of ten
    flags, every flag written, nothing sent by the rerun."""
    import argparse

    from bench_sections import Context
    from bench_support import Emulator

    copy_sample(tmp_path / "corpus")
    ctx = Context(
        argparse.Namespace(quick=True, reps=1, wait_quiet=0.0, keep=False), tmp_path / "corpus", tmp_path
    )
    with Emulator(0.0) as emu:
        sync = sync_flow(ctx, earlier_tool, emu, 0)
        batch = batch_flow(ctx, earlier_tool, emu, 0)
    flags = sync["cold"]["summary"]["total_issues"]
    batches = sync["cold"]["summary"]["total_batches"]
    assert sync["written"]["rows"] == flags > 0
    assert sync["written"]["failed_batch_files"] == 0
    assert sync["emulator"]["cold"]["generate_content_calls"] == batches
    assert sync["emulator"]["noop"]["http_requests"] == 0
    assert sync["emulator"]["cold"]["peak_in_flight"] == 1  # one request at a time
    assert sync["noop"]["summary"]["skipped_already_done"] == batches
    assert batch["jobs_created"] == batches and batch["written"]["rows"] == flags
    assert sync["problems"] == [] and batch["problems"] == []
