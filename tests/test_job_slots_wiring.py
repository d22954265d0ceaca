"""The rules give their jobs the threads and `worker_jobs` units the package decides
(docs/DESIGN.md §7, §11, §31): read from what Snakemake itself plans in a dry run, so a rule that
stopped calling `job_slot` (or called it with the wrong rule) fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import copy_sample
from support.workflow import snakemake

pytestmark = pytest.mark.slow

# the emulator is never reached: a dry run sends nothing
GEMINI_ENV = {"GEMINI_API_KEY": "AIzaSy-FAKE-wiring-0000", "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9"}


def planned_slots(output: str) -> dict[str, set[tuple[int, int]]]:
    """{rule: {(threads, worker_jobs units)}} of every job a dry run lists (Snakemake omits
    `threads: 1` and a resource a job does not take)."""
    slots: dict[str, set[tuple[int, int]]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if head is None:
            continue
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        units = re.search(r"^\s+resources: .*\bworker_jobs=(\d+)", block, re.M)
        slots.setdefault(head.group(1), set()).add(
            (int(threads.group(1)) if threads else 1, int(units.group(1)) if units else 0)
        )
    return slots


def dry_run(tmp_path: Path, *config: str) -> dict[str, set[tuple[int, int]]]:
    copy_sample(tmp_path)
    proc = snakemake(tmp_path, "--dry-run", "--config", "provider=gemini", *config, env=GEMINI_ENV)
    slots = planned_slots(proc.stdout)
    assert slots, f"no jobs in the dry run:\n{proc.stdout[-3000:]}"
    return slots


def test_batch_mode_submit_and_fetch_hold_no_core_and_one_unit(tmp_path):
    slots = dry_run(tmp_path, "mode=batch")
    assert slots["submit"] == {(0, 1)}
    assert slots["fetch"] == {(0, 1)}
    assert "categorise" not in slots


def test_sync_requests_go_to_the_helper_holding_nothing(tmp_path):
    slots = dry_run(tmp_path)
    assert slots["categorise"] == {(0, 0)}
    assert "submit" not in slots and "fetch" not in slots


def test_a_cost_cap_keeps_one_core_per_categorise_job(tmp_path):
    slots = dry_run(tmp_path, "max_cost_usd=5")
    assert slots["categorise"] == {(1, 0)}


def test_the_parser_reads_what_snakemake_prints():
    output = (
        "rule submit:\n    jobid: 3\n    threads: 0\n    resources: tmpdir=/tmp, worker_jobs=1\n\n"
        "localrule all:\n    jobid: 0\n    resources: tmpdir=/tmp\n"
    )
    assert planned_slots(output) == {"submit": {(0, 1)}, "all": {(1, 0)}}
