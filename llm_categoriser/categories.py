"""The categories a flag can be triaged into, with the definitions sent to the model."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    PARSING_ERROR = "PARSING_ERROR"
    SPELLING_ERROR = "SPELLING_ERROR"
    ABSOLUTE_GRAMMATICAL_ERROR = "ABSOLUTE_GRAMMATICAL_ERROR"
    POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR = "POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR"
    STYLISTIC_PREFERENCE = "STYLISTIC_PREFERENCE"
    CONSISTENCY_ERROR = "CONSISTENCY_ERROR"
    AMBIGUOUS_PHRASING = "AMBIGUOUS_PHRASING"
    FALSE_POSITIVE = "FALSE_POSITIVE"
    FACTUAL_INACCURACY = "FACTUAL_INACCURACY"


CATEGORY_NAMES: tuple[str, ...] = tuple(c.value for c in Category)


def parse_category(raw: object) -> Category | None:
    """Map a model's category string to a Category, tolerating case and prefixes.

    Accepts ``spelling_error``, ``ErrorCategory.SPELLING_ERROR``, ``"Spelling error"``;
    returns None for anything that is not one of the categories.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip().strip("\"'`").strip()
    if "." in text:
        text = text.rsplit(".", 1)[-1]
    text = text.upper().replace("-", "_").replace(" ", "_")
    try:
        return Category(text)
    except ValueError:
        return None
