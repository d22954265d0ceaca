from __future__ import annotations

import pytest

from llm_categoriser.pages import MARKER, _markers, context_parts, cut_page, find_page, locate, split_pages

DOC = "Title text\n{1}------\nfirst page with colour\n{2}-----------\nsecond page\nthe  word\nhere\n"


def test_split_pages_with_preamble():
    doc = split_pages(DOC)
    assert list(doc.pages) == [None, 1, 2]
    assert doc.pages[1].startswith("{1}---")
    assert "second page" in doc.pages[2]
    assert "".join(doc.pages.values()) == DOC


def test_no_markers_is_one_page():
    doc = split_pages("just text\nmore")
    assert doc.pages == {None: "just text\nmore"}
    assert not doc.has_markers


def test_starting_at_zero_and_out_of_order_and_duplicates():
    text = "{0}--\nzero\n{2}--\ntwo\n{1}--\none\n{2}--\ntwo again\n"
    doc = split_pages(text)
    assert set(doc.pages) == {0, 1, 2}
    assert doc.out_of_order
    assert doc.duplicate_markers == [2]
    assert "two again" in doc.pages[2] and "two\n" in doc.pages[2]


def test_marker_needs_dashes_and_own_line():
    doc = split_pages("{1}\nnot a marker {2}---\n")
    assert list(doc.pages) == [None]


def test_context_parts():
    assert context_parts("...the **colour** of...") == ("the ", "colour", " of")
    assert context_parts("no highlight") == ("", "no highlight", "")


def test_locate_tolerates_folded_whitespace():
    page = split_pages(DOC).pages[2]
    pos = locate(page, "...second page the **word** here...")
    assert pos is not None and page[pos : pos + 4] == "word"
    assert locate(page, "...**absent**...") is None


def test_find_page():
    doc = split_pages(DOC)
    assert find_page(doc, "...first page with **colour**...") == 1
    assert find_page(doc, "...**nowhere**...") is None


def test_cut_page_keeps_windows_and_says_so():
    text = "a" * 5000 + "TARGET" + "b" * 5000
    cut, was_cut = cut_page(text, [5000], 2000)
    assert was_cut and "TARGET" in cut
    assert "page cut" in cut and len(cut) < 2400
    same, was_cut = cut_page("short", [0], 2000)
    assert (same, was_cut) == ("short", False)


@pytest.mark.parametrize(
    "text",
    [
        "{1}---\nfirst\n{2}-----  \r\nsecond",
        "see {3}--- inline\n{4}---\nx {5}---\n{{6}---\n{7}-- x\n{8}-\t\n",
        "{1}---",
        "\n{12}---\n\n{12}---\n{3}---\r\n",
    ],
)
def test_markers_are_found_only_at_the_start_of_a_line(text):
    expected = [(m.start(), m.end(), m.group(1)) for m in MARKER.finditer(text)]
    assert expected
    assert [(m.start(), m.end(), m.group(1)) for m in _markers(text)] == expected
