"""Unit tests of the offline categoriser's phrasing evidence: compounds written open, wordiness
that drops a word with meaning, American spellings quoted from elsewhere and quotation marks in
program code (tables of flag, context and expected category; the category table is in
``test_offline_rules.py``)."""

from __future__ import annotations

import pytest
from test_offline_rules import ENGLISH_DOC, make_issue, run

from llm_categoriser.categories import Category

# ---- compounds written open: a noun needs no hyphen, a modifier before a noun does -----------------


@pytest.mark.parametrize(
    ("words", "context", "expected"),
    [
        (
            "net zero",
            "...local firms are working towards **net zero**. Using some of...",
            Category.FALSE_POSITIVE,
        ),
        ("hire purchase", "...rates on overdrafts, **hire purchase** and loans...", Category.FALSE_POSITIVE),
        ("gender neutral", "...the use of more **gender neutral** language...", Category.PARSING_ERROR),
        ("follow up", "...and take part in a **follow up** discussion....", Category.PARSING_ERROR),
        ("2 year", "...designed as a **2 year** course....", Category.PARSING_ERROR),  # a number and unit
        ("24 hour", "...both the 12 hour and **24 hour**. In French...", Category.PARSING_ERROR),
    ],
)
def test_open_compound(words, context, expected):
    issue = make_issue(
        words,
        context,
        rule_id="EN_COMPOUNDS_X",
        message="This word is normally spelled with a hyphen.",
        suggestions=words.replace(" ", "-"),
    )
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is expected


# ---- wordiness: a shorter wording that drops a word with meaning is not the same wording -------------


@pytest.mark.parametrize(
    ("words", "suggestions", "expected"),
    [
        ("subject matter", "subject", Category.FALSE_POSITIVE),  # drops "matter"
        ("a free gift", "a gift", Category.FALSE_POSITIVE),
        ("outside of", "outside", Category.STYLISTIC_PREFERENCE),  # drops only "of"
        ("all of the", "all the", Category.STYLISTIC_PREFERENCE),  # keeps the quantifier
        ("of any of", "of", Category.FALSE_POSITIVE),  # drops the quantifier "any"
        ("each of the", "the", Category.FALSE_POSITIVE),
        ("whether or not", "whether", Category.STYLISTIC_PREFERENCE),
        ("at this point in time", "now", Category.STYLISTIC_PREFERENCE),  # a rewording, not a deletion
        ("subject matter", "", Category.STYLISTIC_PREFERENCE),  # no shorter wording offered
    ],
)
def test_wordiness(words, suggestions, expected):
    issue = make_issue(
        words,
        f"...the learners discuss **{words}** in groups....",
        rule_id="WORDINESS_X",
        type_="style",
        message="Consider a shorter wording.",
        suggestions=suggestions,
    )
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is expected


# ---- an American spelling quoted from elsewhere: a link's text, a function's name -----------------


@pytest.mark.parametrize(
    ("word", "context", "expected"),
    [
        (
            "Encyclopedia",
            "...Read more in the [**Encyclopedia**](https://www.example.org/x) entry...",
            Category.FALSE_POSITIVE,
        ),
        (
            "organization",
            "...see [the **organization** of the army](https://example.org) for...",
            Category.FALSE_POSITIVE,
        ),
        ("capitalize", "...| Capitalise | **capitalize**() | Count |...", Category.FALSE_POSITIVE),
        (
            "organization",
            "...the **organization** of the army [1](https://example.org)...",
            Category.SPELLING_ERROR,
        ),
        (
            "organization",
            "...the [army] and its **organization** were (in part) new...",
            Category.SPELLING_ERROR,
        ),
    ],
)
def test_american_spelling_quoted_from_elsewhere(word, context, expected):
    suggestion = word.replace("iz", "is").replace("pedia", "paedia")
    category, _confidence, _reason = run(make_issue(word, context, suggestions=suggestion), ENGLISH_DOC)
    assert category is expected


# ---- unpaired quotation marks: a string in program code is paired in the code ---------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ('...| Literal outputs | output(**"**Enter Name: ") |...', Category.FALSE_POSITIVE),
        ('...such as print("Average: **"**) average or...', Category.FALSE_POSITIVE),
        ('...the teacher said **"**well done to all. Then...', Category.PARSING_ERROR),
        ('...Richard (the king) said **"**enough. Then...', Category.PARSING_ERROR),  # a closed aside
    ],
)
def test_quote_in_program_code(context, expected):
    issue = make_issue(
        '"',
        context,
        rule_id="EN_UNPAIRED_QUOTES",
        type_="typographical",
        message="Unpaired symbol: '\"' seems to be missing",
    )
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is expected
