"""Hostile and broken input, report and documents: an unusable report is one clear error, odd rows
are kept or skipped with a reason, unsafe names are refused, odd Markdown is planned without a
crash (docs/HOSTILE_INPUT.md has the table of cases).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import HEADER, write_doc, write_report

from llm_categoriser.errors import ReportError
from llm_categoriser.lt_report import load_report
from llm_categoriser.pages import cut_page, split_pages
from llm_categoriser.paths import check_name
from llm_categoriser.plan import build_plan
from llm_categoriser.plan_jobs import planned_batches
from llm_categoriser.prompts import render_user
from llm_categoriser.settings import resolve

ROW = 'Geo,a.md,3,RULE,misspelling,colour,Msg,color,"...the **colour** of...",LT\n'


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        pytest.param(b"", ["report.csv", "the report is empty", "Expected a header line"], id="empty"),
        pytest.param(b" \r\n\r\n", ["report.csv", "the report is empty"], id="blank-lines"),
        pytest.param(
            b"Subject,Filename,Page\nGeo,a.md,1\n",
            ["report.csv", "line 1", "missing column(s) Rule ID", "The header must name"],
            id="missing-columns",
        ),
        pytest.param(
            HEADER.replace("Issue", "Problem").encode(),
            ["line 1", "missing column(s) Issue", "Found: Subject, Filename, Page, Rule ID, Type, Problem"],
            id="renamed-column",
        ),
        pytest.param(
            HEADER.replace("Pass Code", "Issue").encode(),
            ["line 1", "column 'Issue' appears more than once", "Keep one column"],
            id="duplicate-column",
        ),
        pytest.param(
            (HEADER + ROW + ROW.replace("colour", "caf\xe9")).encode("latin-1"),
            ["report.csv", "not UTF-8 (byte 0xe9 on line 3)", "iconv -f latin1 -t utf-8"],
            id="latin-1",
        ),
        pytest.param(
            b"\xef\xbb\xbf" + (HEADER + ROW.replace("colour", "d\xe9cor")).encode("latin-1"),
            ["report.csv", "not UTF-8 (byte 0xe9 on line 2)", "iconv -f latin1 -t utf-8"],
            id="latin-1-after-byte-order-mark",
        ),
        pytest.param(
            (HEADER + ROW + 'Geo,a.md,1,R,t,"never closed,M,,ctx,LT\n' + ROW).encode(),
            ["line 3", "malformed CSV", "runs on to line 4; is it closed?", "Fix the quoting of that row"],
            id="unterminated-quote",
        ),
        pytest.param(
            (HEADER + 'Geo,a.md,1,R,t,"x"y,M,,ctx,LT\n').encode(),
            ["line 2", "malformed CSV", "text after a closing quote"],
            id="text-after-quote",
        ),
    ],
)
def test_unusable_report_is_one_clear_error(tmp_path, content, needles):
    with pytest.raises(ReportError) as info:
        load_report(write_report(tmp_path, content))
    for needle in needles:
        assert needle in str(info.value)


def test_header_only_is_a_warning(tmp_path):
    report = load_report(write_report(tmp_path, HEADER))
    assert report.issues == [] and report.skipped == []
    assert report.warnings == [
        f"{tmp_path / 'report.csv'}: the report has a header but no rows; nothing to categorise"
    ]


def test_bom_and_windows_line_endings(tmp_path):
    plain = load_report(write_report(tmp_path, HEADER + ROW, "plain.csv")).issues
    data = b"\xef\xbb\xbf" + (HEADER + ROW).replace("\n", "\r\n").encode()
    issues = load_report(write_report(tmp_path, data)).issues
    assert [i.model_dump(exclude={"row"}) for i in issues] == [i.model_dump(exclude={"row"}) for i in plain]
    assert issues[0].subject == "Geo" and issues[0].pass_code == "LT"  # no BOM, no stray \r


def test_quoted_cell_with_newlines_keeps_rows_and_line_numbers(tmp_path):
    multi = 'Geo,a.md,1,R,t,"two\nlines",M,,"...**two\nlines**...",LT\n'
    bad_page = ROW.replace(",3,", ",x,")
    report = load_report(write_report(tmp_path, HEADER + multi + bad_page))
    assert [i.issue for i in report.issues] == ["two\nlines", "colour"]
    assert [i.row for i in report.issues] == [1, 2]
    assert "row 2 (line 5)" in report.warnings[0]  # the first record spans lines 2-4


def test_duplicate_rows_are_both_kept_with_distinct_keys(tmp_path):
    report = load_report(write_report(tmp_path, HEADER + ROW + ROW + ROW))
    assert [i.occurrence for i in report.issues] == [0, 1, 2]
    assert len({i.key for i in report.issues}) == 3


def test_one_megabyte_cells(tmp_path):
    big = "x" * 1_000_000
    row = f'Geo,a.md,1,R,t,colour,{big},,"...**colour** {big}...",LT\n'
    report = load_report(write_report(tmp_path, HEADER + row))
    assert len(report.issues[0].message) == 1_000_000
    assert len(report.issues[0].context) > 1_000_000


@pytest.mark.parametrize("page", ["abc", "-3", "1.5", "3 pages", "99999999999999999999x"])
def test_page_that_is_not_a_whole_number_is_kept_and_warned(tmp_path, page):
    report = load_report(write_report(tmp_path, HEADER + ROW.replace(",3,", f",{page},")))
    assert report.issues[0].page is None
    assert len(report.issues) == 1
    warning = report.warnings[0]
    assert "report.csv: row 1 (line 2)" in warning and "not a non-negative whole number" in warning
    assert "page found from its context" in warning


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("../evil", "'..' component"),
        ("a/../../b", "'..' component"),
        ("/etc/passwd", "absolute path"),
        ("C:\\Windows", "absolute path"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("bad\x00name", "NUL or other control character"),
        ("line\nbreak", "NUL or other control character"),
        ("..", "names a folder"),
        (".hidden", "hidden name"),
        ("Geo{x}graphy", "brace"),
        ("x" * 201, "longer than 200 bytes"),
        ("", "is empty"),
        (" padded", "leading or trailing spaces"),
    ],
)
def test_unsafe_names_are_refused(value, why):
    with pytest.raises(Exception) as info:
        check_name(value, "Subject")
    assert why in str(info.value) and "Subject" in str(info.value)


def test_unsafe_rows_are_skipped_with_row_line_and_fix(tmp_path):
    bad = ROW.replace("Geo,", '"../evil",', 1) + ROW.replace("a.md", '"/etc/passwd"', 1)
    report = load_report(write_report(tmp_path, HEADER + bad + ROW))
    assert len(report.issues) == 1
    assert [(s.row, s.line) for s in report.skipped] == [(1, 2), (2, 3)]
    assert "Subject '../evil' contains a '..' component; row skipped" in report.skipped[0].reason
    assert "correct the row and rerun" in report.skipped[1].reason


# ---------------------------------------------------------------------------------------------
# Markdown (planning)
# ---------------------------------------------------------------------------------------------


def plan_for(tmp_path: Path, rows: str, docs: dict[str, str], **config):
    documents = tmp_path / "Documents"
    for name, text in docs.items():
        write_doc(documents, "Geo", name, text)
    documents.mkdir(exist_ok=True)
    (documents / "language-check-report.csv").write_text(HEADER + rows, encoding="utf-8")
    settings = resolve({"documents_dir": str(documents), "data_dir": str(tmp_path / "data"), **config})
    plan = build_plan(settings)
    batches = [
        b
        for d in plan.documents
        if d.batch_ids
        for b in planned_batches(settings.layout, d.subject, d.document)
    ]
    return plan, batches


def test_missing_markdown_skips_the_document_named_and_counted(tmp_path):
    plan, batches = plan_for(tmp_path, ROW + ROW + ROW.replace("a.md", "b.md"), {"b.md": "the colour of\n"})
    assert [d.filename for d in plan.documents] == ["b.md"]
    assert sum(len(b.flags) for b in batches) == 1
    (skipped,) = plan.skipped_documents
    assert skipped.document == "Geo/a.md" and skipped.issues == 2
    assert "Geo/markdown/a.md not found" in skipped.reason
    assert "2 flag(s) are not categorised" in skipped.reason


def test_markdown_that_is_a_folder_is_skipped_not_a_crash(tmp_path):
    (tmp_path / "Documents" / "Geo" / "markdown" / "a.md").mkdir(parents=True)
    plan, _ = plan_for(tmp_path, ROW, {})
    assert "cannot read the Markdown file" in plan.skipped_documents[0].reason


def test_empty_markdown_sends_no_page_and_warns_once(tmp_path):
    plan, (batch,) = plan_for(tmp_path, ROW + ROW.replace("colour", "hue"), {"a.md": ""})
    assert batch.pages == [] and len(batch.flags) == 2
    (warning,) = plan.warnings  # one for the file, none per flag
    assert warning.startswith("Geo/a.md: ") and "a.md is empty; flags are sent without page text" in warning
    assert "(no page text available)" in render_user(batch)


def test_markdown_without_markers_is_one_page(tmp_path):
    plan, (batch,) = plan_for(tmp_path, ROW.replace(",3,", ",,"), {"a.md": "Intro.\nThe colour of it.\n"})
    assert batch.flags[0].context_page is None
    assert [p.page for p in batch.pages] == [None]
    assert '<page number="before the first page marker">' in render_user(batch)
    assert plan.warnings == []


def test_markers_out_of_order_and_duplicated(tmp_path):
    text = "{2}-----\nsecond\n{1}-----\nfirst\n{2}-----\nthe colour of the sea\n"
    plan, (batch,) = plan_for(tmp_path, ROW.replace(",3,", ",2,"), {"a.md": text})
    assert "Geo/a.md: page marker(s) [2] appear more than once; their text is joined" in plan.warnings
    assert "Geo/a.md: page markers are out of order; pages are taken by their numbers" in plan.warnings
    (page,) = batch.pages
    assert page.page == 2 and "second" in page.text and "colour of the sea" in page.text
    assert "first" not in page.text


def test_ten_megabyte_page_is_cut_around_its_flags_and_the_prompt_says_so(tmp_path):
    filler = ("Lorem ipsum dolor sit amet. " * 400_000)[:10_000_000]
    text = (
        "{1}-----\n" + filler[:5_000_000] + " the colour of the sky " + filler[5_000_000:] + "\n{2}---\nx\n"
    )
    started = time.perf_counter()
    _, (batch,) = plan_for(
        tmp_path,
        ROW.replace(",3,", ",1,").replace("the **colour** of", "the **colour** of the sky"),
        {"a.md": text},
        max_page_chars=4000,
    )
    assert time.perf_counter() - started < 20
    (page,) = batch.pages
    assert page.cut is True and "the colour of the sky" in page.text
    kept = page.text
    for note in ("[… page cut: ", " characters omitted …]"):
        assert note in kept
    omitted = sum(int(n) for n in re.findall(r"page cut: (\d+) characters omitted", kept))
    assert omitted >= len(text.split("{2}")[0]) - 4000  # everything beyond max_page_chars is left out
    assert len(kept) < 4000 + 200  # the budget plus the one-line notes
    prompt = render_user(batch)
    assert 'cut="true"' in prompt and "characters omitted" in prompt


def test_many_flags_on_a_huge_page_still_keep_within_the_budget():
    text = "a" * 200_000
    cut, was_cut = cut_page(text, list(range(0, 200_000, 2_000)), 1_000)
    kept = re.sub(r"\n\[… page cut: \d+ characters omitted …\]\n", "", cut)
    assert was_cut and len(kept) <= 1_000


def test_two_filenames_sharing_a_document_report_are_not_merged_silently(tmp_path):
    rows = ROW + ROW.replace("a.md", "a")
    plan, batches = plan_for(tmp_path, rows, {"a.md": "the colour of\n", "a": "the colour of\n"})
    assert [d.filename for d in plan.documents] == ["a.md"]
    (skipped,) = plan.skipped_documents
    assert (
        skipped.document == "Geo/a" and "would share the report Geo/document_reports/a.csv" in skipped.reason
    )
    assert sum(len(b.flags) for b in batches) == 1


def test_split_pages_keeps_every_character():
    text = "pre\n{3}--\nc\n{1}--\na\n{3}--\nc2\n"
    assert sorted("".join(split_pages(text).pages.values())) == sorted(text)
