from __future__ import annotations

import csv
import io
import os
import stat

import pytest

from llm_categoriser.atomic import atomic_write_text, write_if_changed
from llm_categoriser.outputs import (
    DOCUMENT_COLUMNS,
    document_rows,
    escape_cell,
    read_csv,
    render_csv,
    unescape_cell,
)
from llm_categoriser.records import BatchResult, FlagResult, Manifest

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
