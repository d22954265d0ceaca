"""The plan's change detection: what Snakemake's mtime trigger sees when an input of a batch changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import HEADER, write_doc

from llm_categoriser import plan as plan_module
from llm_categoriser import prompts, steps
from llm_categoriser.atomic import dumps_json
from llm_categoriser.layout import PACKAGE_DIR, PROMPTS_DIR
from llm_categoriser.plan import build_plan
from llm_categoriser.plan_cache import code_files
from llm_categoriser.plan_jobs import planned_batches
from llm_categoriser.records import Manifest, PlannedBatches, RecordError, read_record
from llm_categoriser.records.base import record_json
from llm_categoriser.settings import resolve

ROWS = (
    'Geo,a.md,1,RULE,misspelling,colour,Msg,color,"...the **colour** of...",LT\n'
    'Geo,b.md,1,RULE,misspelling,centre,Msg,center,"...the **centre** of...",LT\n'
)


@pytest.fixture
def templates(tmp_path, monkeypatch) -> Path:
    """A private copy of the prompt templates, used by the plan instead of the package's own."""
    folder = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, folder)
    names = {"system": "system.md", "user": "user.md", "retry": "retry.md"}
    monkeypatch.setattr(prompts, "template_paths", lambda: {k: folder / v for k, v in names.items()})
    prompts.load_templates.cache_clear()
    yield folder
    prompts.load_templates.cache_clear()


def _settings(tmp_path: Path):
    documents = tmp_path / "Documents"
    write_doc(documents, "Geo", "a.md", "{1}\n------\nthe colour of it\n")
    write_doc(documents, "Geo", "b.md", "{1}\n------\nthe centre of it\n")
    (documents / "language-check-report.csv").write_text(HEADER + ROWS, encoding="utf-8")
    return resolve({"documents_dir": str(documents), "data_dir": str(tmp_path / "data")})


def _specs(settings, plan) -> dict[str, tuple[int, bytes]]:
    """Each document's batches file: its modification time and content."""
    out = {}
    for doc in plan.documents:
        path = Path(settings.layout.batches(doc.subject, doc.document))
        out[str(path)] = (path.stat().st_mtime_ns, path.read_bytes())
    return out


def test_editing_a_prompt_template_rewrites_every_batch_spec(tmp_path, templates):
    """Templates are not rule inputs: the batch specs carry their digest instead."""
    settings = _settings(tmp_path)
    first = build_plan(settings)
    before = _specs(settings, first)
    assert len(before) == 2

    again = build_plan(settings)
    assert again.cached and _specs(settings, again) == before

    (templates / "system.md").write_text("A different system prompt.\n", encoding="utf-8")
    prompts.load_templates.cache_clear()
    changed = build_plan(settings)
    after = _specs(settings, changed)
    assert not changed.cached
    assert after.keys() == before.keys()
    for path, (mtime, content) in after.items():
        assert content != before[path][1], f"{path} kept its old fingerprint"
        assert mtime > before[path][0], f"{path} was not rewritten"


def test_unchanged_templates_and_inputs_rewrite_nothing(tmp_path, templates, monkeypatch):
    settings = _settings(tmp_path)
    before = _specs(settings, build_plan(settings))
    monkeypatch.setattr(plan_module, "_cached_plan", lambda settings, key: None)  # force a re-plan
    replanned = build_plan(settings)
    assert replanned.files_written == 0
    assert _specs(settings, replanned) == before


@pytest.mark.parametrize("victim", ["batches", "manifest", "plan"])
def test_a_deleted_planning_file_is_rewritten_not_trusted(tmp_path, templates, victim):
    """The plan cache is used only while every file it stands for still exists."""
    settings = _settings(tmp_path)
    first = build_plan(settings)
    doc = first.documents[0]
    path = {
        "batches": settings.layout.batches(doc.subject, doc.document),
        "manifest": settings.layout.manifest(doc.subject, doc.document),
        "plan": settings.layout.plan_summary,
    }[victim]
    path = Path(path)
    path.unlink()
    again = build_plan(settings)
    assert not again.cached
    assert path.exists()
    assert build_plan(settings).cached


def test_the_manifest_and_the_job_spec_carry_every_fingerprint(tmp_path, templates):
    """A job spec is the only input of a sync categorise job: it must change with any batch."""
    settings = _settings(tmp_path)
    plan = build_plan(settings)
    doc = plan.documents[0]
    path = Path(settings.layout.manifest(doc.subject, doc.document))
    manifest = json.loads(path.read_text(encoding="utf-8"))
    (batch,) = json.loads(Path(settings.layout.batches(doc.subject, doc.document)).read_text())["batches"]
    assert manifest["fingerprints"] == {doc.batch_ids[0]: batch["fingerprint"]}
    (job,) = plan.jobs
    spec_path = Path(settings.layout.job_spec(job))
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    assert len(spec["batches"]) == len(spec["fingerprints"]) == 2  # both documents of the subject
    at = spec["batches"].index([doc.subject, doc.document, doc.batch_ids[0]])
    assert spec["fingerprints"][at] == batch["fingerprint"]

    (templates / "user.md").write_text((templates / "user.md").read_text() + "\nMore.\n")
    prompts.load_templates.cache_clear()
    build_plan(settings)
    changed = json.loads(path.read_text(encoding="utf-8"))
    assert changed["fingerprints"] != manifest["fingerprints"]
    assert json.loads(spec_path.read_text(encoding="utf-8"))["fingerprints"] != spec["fingerprints"]


def test_a_batches_file_holds_the_batches_and_their_fingerprints_as_read_back(tmp_path, templates):
    """Planning dumps each batch once for its fingerprint and its document's file
    (``PlannedBatch.stamp``): the file is the record as written by ``record_json``, each
    fingerprint is the one recomputed from the file's content."""
    settings = _settings(tmp_path)
    plan = build_plan(settings)
    for doc in plan.documents:
        path = settings.layout.batches(doc.subject, doc.document)
        record = read_record(path, PlannedBatches)
        assert (record.subject, record.document) == (doc.subject, doc.document)
        assert Path(path).read_text(encoding="utf-8") == record_json(record)
        assert [b.batch_id for b in record.batches] == doc.batch_ids
        for batch, expected in zip(record.batches, doc.fingerprints, strict=True):
            assert batch.fingerprint == expected == batch.request_fingerprint()
            batch.fingerprint = ""
            assert dumps_json(batch.stamp()) == record_json(batch) and batch.fingerprint == expected
        stamps = [b.model_dump(mode="json") for b in record.batches]
        assert PlannedBatches.text(doc.subject, doc.document, stamps) == record_json(record)


def test_the_plan_cache_is_keyed_on_the_whole_package():
    names = {str(p.relative_to(PACKAGE_DIR)) for p in code_files()}
    expected = {
        "atomic.py",
        "models.py",
        "records/planning.py",
        "layout.py",
        "config.schema.yaml",
        "prompts/user.md",
    }
    assert expected <= names
    assert "providers/offline/rules.py" in names and "providers/gemini/client.py" in names


def test_a_planning_file_of_an_older_shape_is_a_clear_error(tmp_path, templates):
    settings = _settings(tmp_path)
    doc = build_plan(settings).documents[0]
    path = Path(settings.layout.manifest(doc.subject, doc.document))
    old = json.loads(path.read_text(encoding="utf-8"))
    old["issues"] = old.pop("flags")  # the shape of an earlier version
    path.write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        read_record(path, Manifest)
    message = str(caught.value)
    assert str(path) in message and "flags" in message and "delete the data/plan folder" in message


def test_a_plan_written_by_an_older_version_is_made_again(tmp_path, templates):
    settings = _settings(tmp_path)
    build_plan(settings)
    summary = Path(settings.layout.plan_summary)
    old = json.loads(summary.read_text(encoding="utf-8"))
    for doc in old["documents"]:
        doc["issues"] = doc.pop("flags")  # the shape of an earlier version
    summary.write_text(json.dumps(old), encoding="utf-8")
    again = build_plan(settings)
    assert not again.cached and again.flags == 2
    assert build_plan(settings).cached


def _long_document(tmp_path: Path, rows: list[int], batch_size: int = 10):
    """One document of 12 pages with a flag for each number in ``rows`` (its page is n % 12 + 1)."""
    documents = tmp_path / "Documents"
    pages = "".join(
        f"{{{p}}}\n------\nword{p} " + " ".join(f"w{n}" for n in range(300)) + "\n" for p in range(1, 13)
    )
    write_doc(documents, "Geo", "long.md", pages)
    lines = [
        f'Geo,long.md,{n % 12 + 1},RULE,misspelling,w{n},Msg,x,"...the **w{n}** of...",LT\n' for n in rows
    ]
    (documents / "language-check-report.csv").write_text(HEADER + "".join(lines), encoding="utf-8")
    return resolve(
        {"documents_dir": str(documents), "data_dir": str(tmp_path / "data"), "batch_size": batch_size}
    )


def _batches(settings) -> dict[str, tuple[str, ...]]:
    manifest = read_record(settings.layout.manifest("Geo", "long"), Manifest)
    out: dict[str, list[str]] = {b: [] for b in manifest.batches}
    for flag in manifest.flags:
        out[flag.batch_id].append(flag.key)
    return {b: tuple(keys) for b, keys in out.items()}


@pytest.mark.parametrize("change", ["insert", "delete"])
def test_a_replan_keeps_every_batch_an_insertion_or_deletion_does_not_touch(tmp_path, templates, change):
    """The last manifest is the packing's history (docs/DESIGN.md §8): at most two batches are new."""
    rows = list(range(0, 240, 2))
    settings = _long_document(tmp_path, rows)
    build_plan(settings)
    before = _batches(settings)
    assert len(before) > 8
    for n in (1, 57, 121, 239) if change == "insert" else (0, 58, 120, 238):
        rows = sorted({*rows, n}) if change == "insert" else [r for r in rows if r != n]
        settings = _long_document(tmp_path, rows)
        build_plan(settings)
        after = _batches(settings)
        new = [b for b in after if b not in before]
        assert 1 <= len(new) <= 2 if change == "insert" else len(new) <= 1, (n, new)
        assert set(after.values()) - set(before.values()) == {after[b] for b in new}
        kept = [b for b in after if b in before]
        assert len(kept) >= len(before) - 2
        before = after


def test_other_packing_settings_pack_afresh(tmp_path, templates):
    rows = list(range(0, 240, 2))
    build_plan(_long_document(tmp_path, rows, batch_size=10))
    wider = _long_document(tmp_path, rows, batch_size=20)
    build_plan(wider)
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    fresh = _long_document(fresh_dir, rows, batch_size=20)
    build_plan(fresh)
    assert _batches(wider) == _batches(fresh)
    assert max(len(keys) for keys in _batches(wider).values()) > 15


def test_a_damaged_manifest_is_no_history(tmp_path, templates):
    rows = list(range(0, 240, 2))
    settings = _long_document(tmp_path, rows)
    build_plan(settings)
    first = _batches(settings)
    Path(settings.layout.manifest("Geo", "long")).write_text("{not json", encoding="utf-8")
    settings = _long_document(tmp_path, [*rows, 1])  # a changed report: the plan is made again
    plan = build_plan(settings)
    assert not plan.warnings or all("manifest" not in w for w in plan.warnings)
    assert sum(len(keys) for keys in _batches(settings).values()) == len(rows) + 1
    assert _batches(settings) != first


def test_every_batch_gets_hints_from_the_whole_document(tmp_path, templates):
    """The provider's document hints of a flag come from its document's text, in every batch of
    it, not only the first (the offline provider counts the word in the whole document)."""
    from llm_categoriser.lt_report import load_report
    from llm_categoriser.providers.offline.rules import document_hints

    settings = _long_document(tmp_path, list(range(0, 240, 2)))
    assert settings.provider == "offline"
    build_plan(settings)
    text = (tmp_path / "Documents" / "Geo" / "markdown" / "long.md").read_text(encoding="utf-8")
    issues = {i.key: i for i in load_report(tmp_path / "Documents" / "language-check-report.csv").issues}
    manifest = read_record(settings.layout.manifest("Geo", "long"), Manifest)
    assert len(manifest.batches) > 8
    batches = planned_batches(settings.layout, "Geo", "long")
    assert [b.batch_id for b in batches] == manifest.batches
    for batch in batches:
        batch_id = batch.batch_id
        for flag in batch.flags:
            assert flag.hints == document_hints(issues[flag.key], text), (batch_id, flag.key)
            assert flag.hints["freq"] == 12  # the word is on every page of the document


def _plan_files(settings) -> dict[str, tuple[int, bytes]]:
    """Every planning file but the plan summary and its stamp: modification time and content."""
    folder = Path(settings.layout.plan_dir)
    skip = {Path(settings.layout.plan_summary), Path(settings.layout.plan_stamp)}
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*.json"))
        if path not in skip
    }


def test_a_one_flag_edit_rewrites_its_documents_batches_and_one_job_spec(tmp_path, templates):
    """A document's batches are one file (docs/DESIGN.md §9): editing one flag rewrites that
    file, the document's manifest and the spec of the one job that sends the batch; the other
    document's files and the other job's spec keep their content and modification time."""
    documents = tmp_path / "Documents"
    settings = _settings(tmp_path).model_copy(update={"max_batches_per_job": 1})
    plan = build_plan(settings)
    assert len(plan.jobs) == 2
    before = _plan_files(settings)
    layout = settings.layout
    names = {
        "a": [layout.batches("Geo", "a"), layout.manifest("Geo", "a")],
        "b": [layout.batches("Geo", "b"), layout.manifest("Geo", "b")],
    }
    names = {k: [os.path.relpath(p, layout.plan_dir) for p in v] for k, v in names.items()}
    assert set(names["a"] + names["b"]) < before.keys()
    job_a = next(job for job, refs in plan.jobs.items() if refs[0][1] == "a")
    spec_a = os.path.relpath(layout.job_spec(job_a), layout.plan_dir)

    report = documents / "language-check-report.csv"
    report.write_text(HEADER + ROWS.replace(",Msg,color,", ",Edited,color,"), encoding="utf-8")
    edited = build_plan(settings)
    assert not edited.cached
    after = _plan_files(settings)
    assert after.keys() == before.keys()
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {*names["a"], spec_a}
    for name in changed:
        assert after[name][0] > before[name][0] and after[name][1] != before[name][1], name
    (old,) = read_record(layout.batches("Geo", "a"), PlannedBatches).batches
    assert old.flags[0].message == "Edited"


def test_batch_files_of_the_older_layout_are_removed_when_planned(tmp_path, templates, monkeypatch):
    """Plans once wrote a file per batch in a ``batches`` folder: planning the document again
    removes it (nothing reads it)."""
    settings = _settings(tmp_path)
    doc = build_plan(settings).documents[0]
    old = Path(settings.layout.old_batches_dir(doc.subject, doc.document))
    old.mkdir()
    (old / f"{doc.batch_ids[0]}.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(plan_module, "_cached_plan", lambda settings, key: None)  # force a re-plan
    build_plan(settings)
    assert not old.exists()
    assert Path(settings.layout.batches(doc.subject, doc.document)).exists()


def test_a_job_reads_its_batches_from_their_documents_files(tmp_path, templates, monkeypatch):
    """``steps.job_batches``: the spec's batches, in its order, each document's file read once;
    a file that no longer holds a batch of the spec is an error, not a silent gap."""
    settings = _settings(tmp_path)
    plan = build_plan(settings)
    (job,) = plan.jobs
    spec_file = settings.layout.job_spec(job)
    reads: list[tuple[str, str]] = []
    real = steps.planned_batches

    def counted(layout, subject, document):
        reads.append((subject, document))
        return real(layout, subject, document)

    monkeypatch.setattr(steps, "planned_batches", counted)
    spec, batches = steps.job_batches(spec_file, settings)
    assert [(b.subject, b.document, b.batch_id) for b in batches] == [tuple(ref) for ref in spec.batches]
    assert [b.fingerprint for b in batches] == spec.fingerprints
    assert sorted(reads) == [("Geo", "a"), ("Geo", "b")]

    path = Path(settings.layout.batches("Geo", "a"))
    record = read_record(path, PlannedBatches)
    path.write_text(record_json(record.model_copy(update={"batches": []})), encoding="utf-8")
    with pytest.raises(ValueError, match="changed after"):
        steps.job_batches(spec_file, settings)
