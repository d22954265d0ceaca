from __future__ import annotations

from llm_categoriser.prompts import cell, issue_table, load_templates, render_user
from llm_categoriser.records import PlannedBatch

BATCH = PlannedBatch.model_validate(
    {
        "subject": "Geography",
        "filename": "geo.md",
        "document": "geo",
        "batch_id": "p0001-0002",
        "settings": {},
        "max_cell_chars": 600,
        "flags": [
            {
                "key": "key0",
                "local_id": 0,
                "page": 1,
                "context_page": 1,
                "issue": "a|b",
                "rule_id": "R",
                "type": "t",
                "message": "<b>bold</b> & 'q'",
                "suggestions": "x, y",
                "highlighted_context": '...say "**a|b**" now...',
            },
            {
                "key": "key1",
                "local_id": 1,
                "page": 2,
                "context_page": 2,
                "issue": "colour",
                "rule_id": "R2",
                "type": "t",
                "message": "m",
                "suggestions": "",
                "highlighted_context": "...**colour**...",
            },
        ],
        "pages": [
            {"page": 1, "text": "{1}---\npage one", "cut": False},
            {"page": 2, "text": "{2}---\npage two", "cut": True},
        ],
    }
)


def test_table_escapes_pipes_but_not_html():
    table = issue_table(BATCH.flags, 600)
    assert "a\\|b" in table
    assert "<b>bold</b> & 'q'" in table
    assert table.splitlines()[0].startswith("| issue_id |")
    assert table.splitlines()[2].startswith("| 0 | 1 |")


def test_each_page_once_and_cut_flag():
    user = render_user(BATCH)
    assert user.count("page one") == 1 and user.count("page two") == 1
    assert '<page number="2" cut="true">' in user
    assert "Subject: Geography" in user and "Document: geo.md" in user


def test_retry_prompt_only_has_pending_issues_and_their_pages():
    user = render_user(BATCH, local_ids={1}, problems="no answer for this flag")
    assert "colour" in user and "a\\|b" not in user
    assert "page two" in user and "page one" not in user
    assert "no answer for this flag" in user


def test_cells_are_bounded_and_single_line():
    assert cell("x" * 1000, 50) == "x" * 49 + "…"
    assert cell("a\nb", 50) == "a b"


def test_templates_digest_is_stable():
    assert load_templates().digest == load_templates().digest
    assert "JSON array" in load_templates().system
