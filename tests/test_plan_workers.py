"""A large corpus is planned in worker processes: the same plan, files and warnings as in one."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_sample

from llm_categoriser import plan as plan_module
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


@pytest.mark.parametrize("chunk", [4, 3])  # the sample's 8 documents: whole chunks, and a rest
def test_workers_plan_what_one_process_plans(tmp_path, monkeypatch, chunk):
    alone, alone_files = _planned(tmp_path, "alone")
    monkeypatch.setattr(plan_module, "_planning_workers", lambda flags, decisions: 2)
    monkeypatch.setattr(plan_module, "PLAN_CHUNK", chunk)
    workers, workers_files = _planned(tmp_path, "workers")
    assert workers.documents == alone.documents
    assert workers.warnings == alone.warnings and any("page" in w for w in alone.warnings)
    assert workers.files_written == alone.files_written > 0
    assert workers_files.keys() == alone_files.keys()
    for name, content in alone_files.items():
        if name not in ("plan/plan.json", "plan/stamp.json"):  # they name the folders
            assert workers_files[name] == content, name


def test_small_corpora_and_the_cascade_stay_in_one_process():
    assert plan_module._planning_workers(plan_module.PARALLEL_FLAGS - 1, None) == 1
    assert plan_module._planning_workers(10**6, object()) == 1
