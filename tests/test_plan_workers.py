"""A large corpus is planned in worker processes, a mid-sized one with a forked helper: the same
plan, files and warnings as in one process."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from conftest import copy_sample

from llm_categoriser import plan as plan_module
from llm_categoriser import workers
from llm_categoriser.plan import build_plan
from llm_categoriser.settings import resolve


def _planned(tmp_path: Path, name: str) -> tuple[object, dict[str, bytes]]:
    documents = copy_sample(tmp_path / name)
    # a page marker that is not in the Markdown: a warning from inside a document's planning
    markdown = next((documents / "Music" / "markdown").glob("*.md"))
    markdown.write_text(markdown.read_text(encoding="utf-8").replace("{2}", "{two}", 1), encoding="utf-8")
    data = tmp_path / name / "data"
    settings = resolve({"documents_dir": str(documents), "data_dir": str(data)}, env={})
    plan = build_plan(settings)
    files = {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*.json"))}
    return plan, files


def _assert_same_plan(planned, alone) -> None:
    """The same documents, warnings and files as the plan made by one process alone."""
    (plan, files), (plan_alone, files_alone) = planned, alone
    assert plan.documents == plan_alone.documents
    assert plan.warnings == plan_alone.warnings and any("page" in w for w in plan_alone.warnings)
    assert plan.files_written == plan_alone.files_written > 0
    assert files.keys() == files_alone.keys()
    for name, content in files_alone.items():
        if name not in ("plan/plan.json", "plan/stamp.json"):  # they name the folders
            assert files[name] == content, name


@pytest.mark.parametrize("chunk", [4, 3])  # the sample's 8 documents: whole chunks, and a rest
def test_workers_plan_what_one_process_plans(tmp_path, monkeypatch, chunk):
    alone = _planned(tmp_path, "alone")
    monkeypatch.setattr(plan_module, "_planning_workers", lambda flags, decisions: 2)
    monkeypatch.setattr(plan_module, "PLAN_CHUNK", chunk)
    _assert_same_plan(_planned(tmp_path, "workers"), alone)


def test_small_corpora_and_the_cascade_stay_in_one_process():
    assert plan_module._planning_workers(plan_module.PARALLEL_FLAGS - 1, None) == 1
    assert plan_module._planning_workers(10**6, object()) == 1


def test_a_large_report_starts_the_workers_before_it_is_read(tmp_path, monkeypatch):
    """The planning workers start while the report is read, when its size says it is large; not
    for a small report, the cascade or a filtered run."""
    warmed: list[tuple[str, ...]] = []
    monkeypatch.setattr(plan_module.workers, "warm", warmed.append)
    report = tmp_path / "report.csv"

    def warms(size: int, **config: object) -> bool:
        report.write_bytes(b"x" * size)
        warmed.clear()
        plan_module._warm_workers(resolve({"report": str(report), **config}, env={}))
        return warmed == [("llm_categoriser.plan",)]

    large = plan_module.PARALLEL_FLAGS * plan_module.REPORT_BYTES_PER_FLAG
    assert warms(large)
    assert not warms(large - 1)
    assert not warms(large, cascade=True)
    assert not warms(large, subjects="Music")
    report.unlink()
    warmed.clear()
    plan_module._warm_workers(resolve({"report": str(report)}, env={}))
    assert warmed == []  # a missing report: load_report says so


def test_warm_workers_are_started_and_import_what_they_are_told(monkeypatch):
    monkeypatch.setattr(plan_module.workers, "cores", lambda: 2)
    plan_module.workers.shutdown()
    try:
        plan_module.workers.warm(("llm_categoriser.plan",))
        pool = plan_module.workers.pool_if_any()
        assert pool is not None and len(pool._processes) == 2  # both started, before any work
        assert pool.submit(sorted, [2, 1]).result() == [1, 2]
    finally:
        plan_module.workers.shutdown()


_PLAN_SOME = plan_module._plan_some
_PLANNERS: list[Path] = []  # the folder where each chunk leaves a file named after its process


def _recorded_plan_some(works):  # module-level: the helper is handed it by name
    folder = _PLANNERS[0]
    (folder / f"{os.getpid()}-{len(list(folder.iterdir()))}").touch()
    return _PLAN_SOME(works)


def _record_pids(monkeypatch, folder: Path) -> None:
    """Make every chunk of documents leave a file named after the process that planned it."""
    monkeypatch.setattr(plan_module, "_plan_some", _recorded_plan_some)
    monkeypatch.setattr(sys.modules[__name__], "_PLANNERS", [folder])


@pytest.mark.parametrize("chunk", [1, 3])
def test_a_forked_helper_plans_what_one_process_plans(tmp_path, monkeypatch, chunk):
    alone = _planned(tmp_path, "alone")
    monkeypatch.setattr(plan_module, "HELPER_FLAGS", 1)  # the sample counts as mid-sized
    monkeypatch.setattr(plan_module, "PLAN_CHUNK", chunk)
    monkeypatch.setattr(workers, "cores", lambda: 2)
    # threads other tests left (idle servers, pools) would keep the helper from forking here
    monkeypatch.setattr(plan_module, "_only_thread", lambda: True)
    pids = tmp_path / "pids"
    pids.mkdir()
    _record_pids(monkeypatch, pids)
    helped = _planned(tmp_path, "helped")
    planners = {name.name.split("-")[0] for name in pids.iterdir()}
    assert str(os.getpid()) in planners and len(planners) == 2  # this process and the helper
    _assert_same_plan(helped, alone)


def test_the_helper_is_forked_only_where_it_is_safe_and_pays(monkeypatch):
    mid = plan_module.HELPER_FLAGS
    monkeypatch.setattr(workers, "cores", lambda: 2)
    monkeypatch.setattr(plan_module, "_only_thread", lambda: True)
    helper = plan_module._forked_helper(mid, None)
    assert helper is not None
    helper.shutdown()
    assert plan_module._forked_helper(mid - 1, None) is None  # small: not worth a process
    assert plan_module._forked_helper(plan_module.PARALLEL_FLAGS, None) is None  # the workers' turn
    assert plan_module._forked_helper(mid, object()) is None  # the cascade plans in one process
    monkeypatch.setattr(workers, "cores", lambda: 1)
    assert plan_module._forked_helper(mid, None) is None  # --cores 1
    monkeypatch.setattr(workers, "cores", lambda: 2)
    monkeypatch.undo()  # the real check of the threads
    monkeypatch.setattr(workers, "cores", lambda: 2)
    waiting = threading.Event()
    other = threading.Thread(target=waiting.wait)
    other.start()
    try:
        assert plan_module._forked_helper(mid, None) is None  # a fork would not copy that thread
    finally:
        waiting.set()
        other.join()
