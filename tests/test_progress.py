"""The compact progress view: what it counts, what it prints, and what it keeps off the terminal."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path

import pytest
from conftest import copy_sample
from support.workflow import snakemake

from llm_categoriser.layout import Layout
from llm_categoriser.progress import CompactFilter, ProgressView


def record(message: str, level: int = logging.INFO, event: str | None = None) -> logging.LogRecord:
    rec = logging.LogRecord("snakemake.logging", level, __file__, 1, message, None, None)
    if event:
        rec.event = event
    return rec


def test_compact_filter_drops_job_lines_and_keeps_errors():
    keep = CompactFilter()
    assert not keep.filter(record("rule categorise:", event="job_info"))
    assert not keep.filter(record("3 of 20 steps (15%) done", event="progress"))
    assert not keep.filter(record("Select jobs to execute..."))
    assert keep.filter(record("Error in rule categorise:", logging.ERROR, event="job_error"))
    assert keep.filter(record("something odd", logging.WARNING))
    assert keep.filter(record("Categorised 197 flag(s)"))
    assert CompactFilter(lambda: False).filter(record("rule categorise:", event="job_info"))


def write_result(path, batches, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"part": 1, "batches": batches}), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def batch(fingerprint: str, flags: int, requests: int = 1) -> dict:
    items = {f"{fingerprint}-{i}": {"status": "ok"} for i in range(flags)}
    return {
        "fingerprint": fingerprint,
        "items": items,
        "requests": requests,
        "input_tokens": 1000,
        "output_tokens": 200,
    }


def test_view_counts_flags_requests_cache_and_cost(tmp_path):
    layout = Layout(str(tmp_path / "Documents"), str(tmp_path / "data"))

    def cache_path(fingerprint: str) -> Path:
        return Path(layout.cached_answer(fingerprint))

    old = time.time() - 3600
    files = [tmp_path / f"part-{n}.json" for n in range(1, 4)]
    write_result(files[0], [batch("a", 10)], mtime=old)  # done by an earlier run
    stream = io.StringIO()
    view = ProgressView(files, 40, layout, prices=(1.0, 10.0), stream=stream, live=False)
    view.poll()
    assert (view.tally.flags_before, view.tally.flags_done) == (10, 0)

    cached = cache_path("b")  # answered before this run: from the cache
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text("{}", encoding="utf-8")
    os.utime(cached, (old, old))
    write_result(files[1], [batch("b", 10, requests=1)])
    fresh = cache_path("c")  # saved during this run: sent
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_text("{}", encoding="utf-8")
    write_result(files[2], [batch("c", 5, requests=2), batch("d", 5, requests=1)])
    view.poll()
    tally = view.tally
    assert (tally.flags_done, tally.from_cache, tally.sent) == (20, 1, 3)
    later = time.time() + 5  # Snakemake touches each output after its job: counted once
    os.utime(files[2], (later, later))
    os.utime(files[0], (later, later))  # an earlier run's file rewritten now (a forced rerun)
    view.poll()
    tally = view.tally
    assert (tally.flags_before, tally.flags_done, tally.from_cache, tally.sent) == (0, 30, 1, 4)
    assert view.cost() == pytest.approx((3000 * 1.0 + 600 * 10.0) / 1e6)  # three batches sent
    view.started -= 10  # ten seconds in, 30 flags done, 10 to go: about 3 s left
    line = view.line()
    assert line.startswith("progress: 30/40 flags (75%) · 4 request(s) sent, 1 batch(es) from the cache")
    assert "$0.01 so far" in line and "about 3 s left" in line


def test_live_view_redraws_one_line_with_a_bar(tmp_path):
    view = ProgressView([], 0, Layout("Documents", "data"), stream=io.StringIO(), live=True)
    text = view.line()
    assert text.startswith("\r█") and text.endswith("\x1b[K") and "\n" not in text


@pytest.mark.slow
def test_a_run_prints_progress_instead_of_job_lines_unless_verbose(tmp_path):
    copy_sample(tmp_path)
    compact = snakemake(tmp_path)
    out = compact.stdout + compact.stderr
    assert "progress: 197/197 flags (100%)" in out
    assert "rule categorise" not in out and "steps (" not in out
    logs = sorted((tmp_path / ".snakemake" / "log").glob("*.snakemake.log"))
    assert "rule categorise" in logs[-1].read_text(encoding="utf-8")  # the detail is in the log

    verbose = snakemake(tmp_path, "--forcerun", "merge", "--config", "progress=verbose")
    out = verbose.stdout + verbose.stderr
    assert "rule merge" in out and "steps (" in out and "progress: " in out
