from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import pytest

from llm_categoriser import atomic
from llm_categoriser.atomic import (
    atomic_write_text,
    sweep_stale_temp_files,
    write_files_if_changed,
    write_if_changed,
)
from llm_categoriser.costs.usage import Spend
from llm_categoriser.errors import ReportError
from llm_categoriser.outputs import (
    COMBINED_COLUMNS,
    DOCUMENT_COLUMNS,
    combine,
    document_rows,
    escape_cell,
    iter_csv,
    read_csv,
    render_csv,
    unescape_cell,
)
from llm_categoriser.records import (
    BatchResult,
    DocumentStats,
    FlagResult,
    Manifest,
    PlanSummary,
    write_record,
)

MANIFEST = Manifest.model_validate(
    {
        "subject": "Geo",
        "filename": "a.md",
        "document": "a",
        "batches": ["b1"],
        "fingerprints": {"b1": "f"},
        "flags": [
            {
                "issue_id": 0,
                "key": "k0",
                "batch_id": "b1",
                "page": 3,
                "issue": "=SUM(A1)",
                "highlighted_context": 'say "**x**", ok',
                "pass_code": "LT",
                "rule_id": "R",
                "type": "t",
                "message": "m",
                "suggestions": "a, b",
            },
            {
                "issue_id": 1,
                "key": "k1",
                "batch_id": "b1",
                "page": None,
                "issue": "y",
                "highlighted_context": "c | d",
                "pass_code": "",
                "rule_id": "R",
                "type": "t",
                "message": "m",
                "suggestions": "",
            },
        ],
    }
)


@pytest.mark.parametrize(
    "value", ["=1+2", "+44", "-3", "@cmd", "\tx", "\rx", "'=x", "''+y", "plain", "", "it's"]
)
def test_csv_injection_escape_round_trips(value):
    escaped = escape_cell(value)
    assert not escaped.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert unescape_cell(escaped) == value


def test_document_rows_keep_every_issue_and_mark_missing():
    result = BatchResult(
        batch_id="b1",
        fingerprint="f",
        provider="offline",
        model="m",
        items={
            "k0": FlagResult(
                status="ok", error_category="FALSE_POSITIVE", confidence_score=85, reasoning="Fine."
            )
        },
    )
    rows = document_rows(MANIFEST, [result])
    assert [r["issue_id"] for r in rows] == [0, 1]
    assert rows[0]["error_category"] == "FALSE_POSITIVE" and rows[0]["confidence_score"] == 85
    assert rows[1]["status"] == "missing" and "rerun" in rows[1]["error"]
    assert rows[1]["page_number"] == ""


def test_csv_is_plain_and_round_trips(tmp_path):
    rows = document_rows(MANIFEST, [])
    text = render_csv(DOCUMENT_COLUMNS, rows)
    raw = list(csv.DictReader(io.StringIO(text)))
    assert raw[0]["issue"] == "'=SUM(A1)"
    assert raw[0]["pass_code"] == "LT"
    path = tmp_path / "out.csv"
    atomic_write_text(path, text)
    back = read_csv(path)
    assert back[0]["issue"] == "=SUM(A1)"
    assert back[0]["highlighted_context"] == 'say "**x**", ok'


def test_atomic_write_leaves_no_temp_files_and_normal_mode(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "hello")
    assert path.read_text() == "hello"
    assert os.listdir(path.parent) == ["f.txt"]
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # readable by others under the usual umask


def test_write_if_changed_keeps_mtime(tmp_path):
    path = tmp_path / "p.json"
    assert write_if_changed(path, "x")
    before = path.stat().st_mtime_ns
    assert not write_if_changed(path, "x")
    assert path.stat().st_mtime_ns == before
    assert write_if_changed(path, "y")


def test_write_files_if_changed_syncs_every_changed_file_before_any_rename(tmp_path, monkeypatch):
    same, new, edited = tmp_path / "same.csv", tmp_path / "sub" / "new.csv", tmp_path / "edited.csv"
    same.write_text("kept")
    edited.write_text("old")
    before = same.stat().st_mtime_ns
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1])
    written = write_files_if_changed([(same, "kept"), (new, "fresh"), (edited, "new text")])
    assert written == [False, True, True]
    assert events == ["fsync", "fsync", "rename", "rename"]
    assert (same.read_text(), new.read_text(), edited.read_text()) == ("kept", "fresh", "new text")
    assert same.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["edited.csv", "new.csv", "same.csv"]
    assert stat.S_IMODE(new.stat().st_mode) & 0o044  # readable by others under the usual umask


def test_write_files_if_changed_renames_nothing_when_a_sync_fails(tmp_path, monkeypatch):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("old a")

    def failing(path: str) -> None:
        if ".b.csv." in path:
            raise OSError("disk full")

    monkeypatch.setattr(atomic, "_fsync_file", failing)
    with pytest.raises(OSError, match="disk full"):
        write_files_if_changed([(first, "new a"), (second, "new b")])
    assert first.read_text() == "old a"
    assert sorted(os.listdir(tmp_path)) == ["a.csv"]  # no temporary file left behind


def test_the_temporary_files_of_a_killed_writer_are_swept(tmp_path):
    fd, leftover = atomic._open_temp(tmp_path / "deep" / "doc.csv")  # as a writer killed before its rename
    os.close(fd)
    assert sweep_stale_temp_files(tmp_path) == [Path(leftover)]
    assert list((tmp_path / "deep").iterdir()) == []


def test_combined_csv_copies_records_as_reading_and_writing_them_would(tmp_path):
    """The combined CSV copies each document record as text; it must equal what reading every
    cell and writing it again gives, for cells with quotes, newlines, carriage returns, commas,
    formulas and a byte-order mark, and for a CSV of other columns (an older version's)."""
    nasty = ['a "q"\nb', "x\r\ny", "=1+2", "'-z", ",", '"', '""\n"', "\n", "plain", "", "ü\u2028"]
    rows = [
        {**{c: nasty[(i + j) % len(nasty)] for j, c in enumerate(DOCUMENT_COLUMNS)}, "status": "ok"}
        for i in range(40)
    ]
    first, second, older = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    atomic_write_text(first, render_csv(DOCUMENT_COLUMNS, rows[:25]))
    atomic_write_text(second, "\ufeff" + render_csv(DOCUMENT_COLUMNS, rows[25:]))
    atomic_write_text(older, render_csv(DOCUMENT_COLUMNS[:8], rows[:3]))
    docs = [("Geo", "a.md", first, 25), ('Art, "x"', "=b.md", second, 15), ("Geo", "c.md", older, 3)]
    stats = []
    for subject, filename, path, count in docs:
        record = DocumentStats(
            subject=subject,
            filename=filename,
            csv=str(path),
            issues=count,
            batches=1,
            categories={},
            statuses={"ok": count},
            spend=Spend(),
            providers=[],
        )
        stats.append(tmp_path / f"{path.stem}.json")
        write_record(stats[-1], record)
    plan = tmp_path / "plan.json"
    write_record(
        plan, PlanSummary(documents=[], skipped_documents=[], skipped_rows=[], warnings=[], report="r.csv")
    )
    combined, summary = tmp_path / "combined.csv", tmp_path / "summary.json"
    result = combine([d[2] for d in docs], stats, plan, combined, summary)
    expected = [
        {"subject": subject, "filename": filename, **row}
        for subject, filename, path, _ in docs
        for row in read_csv(path)
    ]
    assert combined.read_bytes().decode("utf-8") == render_csv(COMBINED_COLUMNS, expected)
    assert read_csv(combined) == [{c: r.get(c, "") for c in COMBINED_COLUMNS} for r in expected]
    assert result.issues == 43 and result.subjects == {'Art, "x"': 15, "Geo": 28}


def test_csv_rows_read_as_a_dict_reader_reads_them(tmp_path):
    """Blank lines skipped, missing cells empty, escaped cells unescaped, a byte-order mark dropped."""
    path = tmp_path / "rows.csv"
    path.write_text("\ufeffa,b,c\n1,2\n\n'=x,''+y,z\n,,\n'a,''b,\"q,\"\"r\"\n", encoding="utf-8")
    expected = [
        {k: unescape_cell(v or "") for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    ]
    assert list(iter_csv(path)) == expected
    assert expected[1] == {"a": "=x", "b": "'+y", "c": "z"}
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert list(iter_csv(empty)) == []


def test_a_csv_row_longer_than_its_header_is_a_clear_error(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("a,b\n1,2\n1,2,3\n", encoding="utf-8")
    with pytest.raises(ReportError, match=r"long\.csv: line 3: 3 cells where the header has 2"):
        list(iter_csv(path))
