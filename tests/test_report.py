from __future__ import annotations

import pytest
from conftest import HEADER, write_report

from llm_categoriser.errors import ReportError
from llm_categoriser.lt_report import issue_key, load_report

ROW = 'Geo,a.md,3,RULE,misspelling,colour,Msg,color,"...the **colour** of...",LT\n'


def test_loads_rows_with_keys_and_pages(tmp_path):
    report = load_report(write_report(tmp_path, HEADER + ROW + ROW.replace(",3,", ",,")))
    assert [i.page for i in report.issues] == [3, None]
    first = report.issues[0]
    assert (first.subject, first.filename, first.issue, first.pass_code) == ("Geo", "a.md", "colour", "LT")
    assert first.context == "...the **colour** of..."
    assert first.key == issue_key("Geo", "a.md", "RULE", "colour", "...the **colour** of...", 0)


def test_duplicate_rows_get_distinct_keys(tmp_path):
    report = load_report(write_report(tmp_path, HEADER + ROW + ROW))
    assert [i.occurrence for i in report.issues] == [0, 1]
    assert report.issues[0].key != report.issues[1].key


def test_key_does_not_depend_on_row_position(tmp_path):
    other = 'Geo,a.md,4,R2,grammar,x,M,,"...**x**...",LT\n'
    a = load_report(write_report(tmp_path, HEADER + ROW + other)).issues
    b = load_report(write_report(tmp_path, HEADER + other + ROW)).issues
    assert {i.key for i in a} == {i.key for i in b}


def test_bom_crlf_and_embedded_newlines(tmp_path):
    text = HEADER + 'Geo,a.md,1,R,t,"two\nlines",M,,"...**two**...",LT\n'
    data = b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
    report = load_report(write_report(tmp_path, data))
    assert len(report.issues) == 1
    assert report.issues[0].issue == "two\r\nlines"


def test_missing_pass_code_column_is_fine(tmp_path):
    header = HEADER.replace(",Pass Code", "")
    report = load_report(write_report(tmp_path, header + 'Geo,a.md,1,R,t,x,M,,"...**x**..."\n'))
    assert report.issues[0].pass_code == ""


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty"),
        ("Subject,Filename,Page\nGeo,a.md,1\n", "missing column(s) Rule ID"),
        (HEADER.replace("Issue", "Problem"), "missing column(s) Issue"),
    ],
)
def test_unusable_reports_raise_clear_errors(tmp_path, content, needle):
    with pytest.raises(ReportError) as info:
        load_report(write_report(tmp_path, content))
    assert needle in str(info.value)
    assert "report.csv" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ReportError, match="report not found"):
        load_report(tmp_path / "nope.csv")


def test_latin1_report_names_line_and_fix(tmp_path):
    data = (HEADER + ROW.replace("colour", "caf\xe9")).encode("latin-1")
    with pytest.raises(ReportError) as info:
        load_report(write_report(tmp_path, data))
    assert "line 2" in str(info.value) and "UTF-8" in str(info.value)


def test_header_only_is_a_warning_not_a_crash(tmp_path):
    report = load_report(write_report(tmp_path, HEADER))
    assert report.issues == [] and report.warnings


@pytest.mark.parametrize("page", ["abc", "-3", "1.5"])
def test_bad_page_is_kept_without_page_and_warned(tmp_path, page):
    report = load_report(write_report(tmp_path, HEADER + ROW.replace(",3,", f",{page},")))
    assert report.issues[0].page is None
    assert "row 1" in report.warnings[0]


@pytest.mark.parametrize("subject", ["../etc", "/abs", "a/b", "bad\x00name", ".."])
def test_unsafe_names_are_skipped_and_logged(tmp_path, subject):
    bad = ROW.replace("Geo,", f'"{subject}",', 1)
    report = load_report(write_report(tmp_path, HEADER + bad + ROW))
    assert len(report.issues) == 1
    assert report.skipped[0].row == 1
    assert "Subject" in report.skipped[0].reason


def test_one_megabyte_cell(tmp_path):
    big = "x" * 1_000_000
    report = load_report(write_report(tmp_path, HEADER + ROW.replace("Msg", big)))
    assert len(report.issues[0].message) == 1_000_000
