from __future__ import annotations

import json

import pytest

from llm_categoriser.validation import parse_answer, parse_confidence, validate_item

GOOD = {"issue_id": 0, "error_category": "SPELLING_ERROR", "confidence_score": 80, "reasoning": "Typo."}


def answer(*items):
    return json.dumps(list(items))


def test_valid_answer():
    parsed = parse_answer(answer(GOOD, {**GOOD, "issue_id": 1}), {0, 1})
    assert set(parsed.accepted) == {0, 1}
    assert parsed.accepted[0].notes == []


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("```json\n" + answer(GOOD) + "\n```", "code fence removed"),
        ("Here you go:\n" + answer(GOOD) + "\nThanks", "text before the JSON ignored"),
        (
            '[{"issue_id": 0, "error_category": "SPELLING_ERROR", '
            '"confidence_score": 80, "reasoning": "T",},]',
            "trailing commas removed",
        ),
        (json.dumps(GOOD), "single object taken as a one-item array"),
        (json.dumps({"results": [GOOD]}), "array taken from the object's 'results' field"),
    ],
)
def test_repairs_are_noted(text, note):
    parsed = parse_answer(text, {0})
    assert 0 in parsed.accepted
    assert note in parsed.accepted[0].notes


def test_truncated_json_keeps_complete_objects():
    text = answer(GOOD, {**GOOD, "issue_id": 1})[:-30]
    parsed = parse_answer(text, {0, 1})
    assert set(parsed.accepted) == {0}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (85, 85),
        (0.85, 85),
        ("90%", 90),
        ("0.5", 50),
        (1, 1),
        (100, 100),
        (101, None),
        (-1, None),
        ("high", None),
        (None, None),
        (True, None),
    ],
)
def test_confidence(raw, expected):
    assert parse_confidence(raw)[0] == expected


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("spelling_error", "SPELLING_ERROR"),
        ("ErrorCategory.FALSE_POSITIVE", "FALSE_POSITIVE"),
        ("Parsing error", "PARSING_ERROR"),
    ],
)
def test_category_normalised(category, expected):
    parsed = parse_answer(answer({**GOOD, "error_category": category}), {0})
    assert parsed.accepted[0].error_category == expected
    assert "category normalised" in parsed.accepted[0].notes


def test_invalid_items_are_rejected_alone():
    items = [
        {**GOOD, "issue_id": 0, "error_category": "TYPO"},
        {**GOOD, "issue_id": 1, "reasoning": "  "},
        {**GOOD, "issue_id": 2, "confidence_score": "lots"},
        {**GOOD, "issue_id": 3},
    ]
    parsed = parse_answer(answer(*items), {0, 1, 2, 3})
    assert set(parsed.accepted) == {3}
    assert "invalid category" in parsed.rejected[0]
    assert parsed.rejected[1] == "empty reasoning"
    assert "invalid confidence" in parsed.rejected[2]


def test_unknown_and_duplicate_ids():
    parsed = parse_answer(
        answer(GOOD, {**GOOD, "error_category": "FALSE_POSITIVE"}, {**GOOD, "issue_id": 7}), {0}
    )
    assert parsed.accepted[0].error_category == "SPELLING_ERROR"
    assert any("duplicate" in p for p in parsed.problems)
    assert any("unknown issue_id 7" in p for p in parsed.problems)


def test_long_reason_is_cut_and_noted():
    parsed = parse_answer(answer({**GOOD, "reasoning": "word " * 100_000}), {0})
    assert len(parsed.accepted[0].reasoning) == 500
    assert "reasoning cut to 500 characters" in parsed.accepted[0].notes


@pytest.mark.parametrize("text", ["", "not json at all", "[1, 2", None])
def test_unusable_answers(text):
    parsed = parse_answer(text, {0})
    assert not parsed.accepted and parsed.problems


@pytest.mark.parametrize(
    "item",
    [
        {"issue_id": 3, "error_category": "FALSE_POSITIVE", "confidence_score": 70, "reasoning": " Fine.\n "},
        {"issue_id": 3, "error_category": "FALSE_POSITIVE", "confidence_score": 0, "reasoning": "Fine."},
        {"issue_id": 3, "error_category": "FALSE_POSITIVE", "confidence_score": 100, "reasoning": "Fine."},
        {"issue_id": 3, "error_category": "FALSE_POSITIVE", "confidence_score": 101, "reasoning": "Fine."},
        {"issue_id": 3, "error_category": "FALSE_POSITIVE", "confidence_score": -1, "reasoning": "Fine."},
        {"issue_id": 3, "error_category": "FALSE_POSITIVE", "confidence_score": True, "reasoning": "Fine."},
        {"issue_id": 3, "error_category": "FALSE_POSITIVE", "confidence_score": 0.9, "reasoning": "Fine."},
        {"issue_id": 3, "error_category": "false_positive", "confidence_score": 70, "reasoning": "Fine."},
        {"issue_id": 3, "error_category": "NOT_A_CATEGORY", "confidence_score": 70, "reasoning": "Fine."},
        {"id": 3, "category": "SPELLING_ERROR", "confidence": 70, "reason": "Fine."},
        {
            "issue_id": 3,
            "id": 4,
            "error_category": "SPELLING_ERROR",
            "confidence_score": 70,
            "reasoning": "x",
        },
        {"issue_id": "3", "error_category": "SPELLING_ERROR", "confidence_score": "70%", "reasoning": "x"},
        {"issue_id": 3, "error_category": "SPELLING_ERROR", "confidence_score": 70, "reasoning": ""},
    ],
)
def test_an_answer_as_asked_for_is_judged_as_any_other(item):
    """Items with the schema's own keys take a short way through the checks; the same item
    with keys to normalise (the long way) gets the same verdict and the same notes."""
    spelled_otherwise = {f" {key.upper()} ": value for key, value in item.items()}
    assert validate_item(item) == validate_item(spelled_otherwise)
