"""Parse and validate a model's answer for one batch (docs/DESIGN.md §5).

The answer should be a JSON array of ``{issue_id, error_category, confidence_score,
reasoning}``. Common deviations are repaired and noted (code fences, prose around the JSON,
trailing commas, an object instead of an array, a lower-case or prefixed category, a 0–1 or
"90%" confidence, an over-long reason); anything that cannot be repaired is rejected for
that flag only, so that just those flags are asked again. A hostile document can try to
steer the model: a category field holding anything but a category name, and a reasoning
that repeats instructions ("ignore previous instructions"), are rejected rather than trusted.
Parsing is bounded (a deeply nested or huge answer is refused, not a crash) and every
message quoting the model is cut short, as it ends up in the CSV and in the retry prompt.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .categories import CATEGORY_NAMES, parse_category

MAX_REASON_CHARS = 500
_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")
_MAX_STARTS = 200  # JSON start candidates tried in prose, so a hostile answer cannot take long
# A category is a name, optionally prefixed by one identifier (``ErrorCategory.SPELLING_ERROR``);
# anything longer or with other characters (an instruction, a sentence) is rejected, not mined.
_CATEGORY_SHAPE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z][A-Za-z _-]{0,59}")
# Text a document may plant to steer the model; a reasoning that repeats it is not trusted. Kept
# narrow (an instruction to drop earlier instructions, or talk of the system prompt) so that a
# reasoning quoting ordinary exam wording ("do not forget the instructions") is not rejected.
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+)?"
    r"(?:previous|prior|above|earlier|preceding|your|system|original)\s+(?:instructions?|prompts?|rules)\b"
    r"|\bsystem prompt\b",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The names ``validate_item`` looks up; an item with no other key needs no lower-casing.
_FIELD_NAMES = frozenset(
    ("issue_id", "id", "error_category", "category", "confidence_score", "confidence", "reasoning", "reason")
)
_CATEGORY_VALUES = frozenset(CATEGORY_NAMES)


def _short(value: Any, limit: int = 60) -> str:
    """A model's value quoted for a message, never long (it goes into the CSV and the retry)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Accepted:
    error_category: str
    confidence_score: int
    reasoning: str
    notes: list[str] = field(default_factory=list)


@dataclass
class ParsedAnswer:
    accepted: dict[int, Accepted] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _salvage_objects(text: str) -> list[Any]:
    """Decode every complete top-level object in a (possibly truncated) JSON array."""
    decoder = json.JSONDecoder()
    items: list[Any] = []
    pos = text.find("[")
    pos = 0 if pos < 0 else pos + 1
    while True:
        start = text.find("{", pos)
        if start < 0:
            break
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            break
        items.append(obj)
        pos = end
    return items


def _is_answer(data: Any) -> bool:
    return isinstance(data, dict) or (isinstance(data, list) and any(isinstance(i, dict) for i in data))


def _whole(body: str) -> tuple[Any, list[str]] | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return (data, []) if _is_answer(data) or data == [] else None


def _scan(body: str, opener: str) -> tuple[Any, list[str]] | None:
    """The first answer-shaped JSON value starting at an ``opener`` in prose, with notes."""
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(body) if ch == opener][:_MAX_STARTS]
    for start in starts:
        try:
            data, end = decoder.raw_decode(body, start)
        except (ValueError, RecursionError):
            continue
        if not _is_answer(data):
            continue
        notes = []
        if body[:start].strip():
            notes.append("text before the JSON ignored")
        if body[end:].strip():
            notes.append("text after the JSON ignored")
        return data, notes
    return None


def _repair(body: str) -> tuple[Any, list[str]] | None:
    """Trailing commas removed, else the complete objects of a truncated array."""
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        return None
    candidate = body[min(starts) :]
    last = max(candidate.rfind("]"), candidate.rfind("}"))
    try:
        data = json.loads(_TRAILING_COMMA.sub(r"\1", candidate[: last + 1]))
        if _is_answer(data):
            notes = ["trailing commas removed"]
            if body[: min(starts)].strip():
                notes.insert(0, "text before the JSON ignored")
            return data, notes
    except (ValueError, RecursionError):
        pass
    if "[" not in body:
        return None
    try:
        items = _salvage_objects(body)
    except RecursionError:
        items = []
    return (items, ["truncated or malformed JSON: complete objects kept"]) if items else None


def _find_json(body: str) -> tuple[Any, list[str]] | None:
    """Whole JSON; an array in prose; repaired JSON; a single object in prose."""
    return _whole(body) or _scan(body, "[") or _repair(body) or _scan(body, "{")


def extract_items(text: str) -> tuple[list[Any], list[str]]:
    """Find the list of answer objects in ``text``; returns (items, repair notes).

    Tried in order: the whole text as JSON; the first answer-shaped JSON in each code fence,
    then in the text (prose around it ignored); trailing commas removed; the complete objects
    of a truncated array. Every repair is noted.
    """
    body = text.strip()
    fences = [m.group(1).strip() for m in _FENCE.finditer(body)]
    found: tuple[Any, list[str]] | None = None
    for fenced in fences:
        found = _find_json(fenced)
        if found is not None:
            found = (found[0], ["code fence removed", *found[1]])
            break
    if found is None:
        found = _find_json(body)
    if found is None:
        try:
            other = json.loads(body)
        except (ValueError, RecursionError):
            other = None
        else:
            raise ValueError(f"expected a JSON array of objects, got {type(other).__name__}")
        if "[" not in body and "{" not in body:
            raise ValueError("no JSON in the answer")
        raise ValueError("the answer is not valid JSON")
    data, notes = found
    if isinstance(data, dict):
        for name in ("results", "issues", "items", "answers", "categorisations", "data"):
            if isinstance(data.get(name), list):
                notes.append(f"array taken from the object's {name!r} field")
                return data[name], notes
        notes.append("single object taken as a one-item array")
        return [data], notes
    return data, notes


def _issue_id(raw: Any) -> tuple[int | None, str]:
    if isinstance(raw, bool):
        return None, ""
    if isinstance(raw, int):
        return raw, ""
    if isinstance(raw, float) and raw.is_integer():
        return int(raw), ""
    if isinstance(raw, str) and raw.strip().lstrip("#").isdigit() and len(raw) < 20:
        return int(raw.strip().lstrip("#")), "issue_id given as text"
    return None, ""


def parse_confidence(raw: Any) -> tuple[int | None, str]:
    """Confidence as an integer 0–100; a 0–1 fraction is scaled (not truncated)."""
    note = ""
    value: float
    if isinstance(raw, bool) or raw is None:
        return None, ""
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        text = raw.strip().rstrip("%").strip()
        try:
            value = float(text)
        except ValueError:
            return None, ""
        note = "confidence given as text"
    else:
        return None, ""
    fraction = isinstance(raw, float) or "." in str(raw)
    if fraction and 0.0 <= value <= 1.0 and not (isinstance(raw, str) and raw.strip().endswith("%")):
        value *= 100
        note = "confidence scaled from 0-1"
    if not 0 <= value <= 100:
        return None, ""
    return round(value), note


def _field(lowered: dict[str, Any], *names: str) -> Any:
    return next((lowered[n] for n in names if n in lowered), None)


def validate_item(item: Any) -> tuple[int | None, Accepted | None, str]:
    """(issue_id, the accepted answer or None, why it was rejected) for one answer object.

    Rejected, so that the flag is asked again: a category that is not one of the categories
    (an instruction or a sentence in its place included), a confidence that is not a number
    from 0 to 100, an empty reasoning, and a reasoning that repeats instructions planted in
    the document (possible prompt injection: the verdict may have been steered).
    """
    if not isinstance(item, dict):
        return None, None, "an answer item is not a JSON object"
    # the answer as asked for (the schema's keys, a category's exact name, an integer
    # confidence) takes the short way through the checks below, to the same result
    lowered = item if item.keys() <= _FIELD_NAMES else {str(k).strip().lower(): v for k, v in item.items()}
    issue_id, id_note = _issue_id(_field(lowered, "issue_id", "id"))
    if issue_id is None:
        return None, None, "an answer item has no integer issue_id"
    notes: list[str] = [id_note] if id_note else []
    raw_category = _field(lowered, "error_category", "category")
    if type(raw_category) is str and raw_category in _CATEGORY_VALUES:
        category_name = raw_category
    else:
        shaped = isinstance(raw_category, str) and _CATEGORY_SHAPE.fullmatch(
            raw_category.strip().strip("\"'`")
        )
        category = parse_category(raw_category) if shaped else None
        if category is None:
            return issue_id, None, f"invalid category {_short(raw_category)}"
        category_name = category.value
        if raw_category != category_name:
            notes.append("category normalised")
    raw_confidence = _field(lowered, "confidence_score", "confidence")
    if type(raw_confidence) is int and 0 <= raw_confidence <= 100:
        confidence: int | None = raw_confidence
    else:
        confidence, note = parse_confidence(raw_confidence)
        if confidence is None:
            return issue_id, None, f"invalid confidence {_short(raw_confidence)}"
        if note:
            notes.append(note)
    reason = _field(lowered, "reasoning", "reason")
    if not isinstance(reason, str) or not reason.strip():
        return issue_id, None, "empty reasoning"
    if _INJECTION.search(reason):
        return issue_id, None, "reasoning repeats instructions from the document (possible prompt injection)"
    if _CONTROL.search(reason):
        reason = _CONTROL.sub("", reason)
        notes.append("control characters removed from the reasoning")
    reason = " ".join(reason.split())
    if not reason:
        return issue_id, None, "empty reasoning"
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
        notes.append("reasoning cut to 500 characters")
    return issue_id, Accepted(category_name, confidence, reason, notes), ""


def parse_answer(text: str | None, expected: set[int]) -> ParsedAnswer:
    result = ParsedAnswer()
    if not text or not text.strip():
        result.problems.append("empty answer")
        return result
    try:
        items, notes = extract_items(text)
    except ValueError as exc:
        result.problems.append(str(exc))
        return result
    result.notes.extend(notes)
    for item in items:
        issue_id, accepted, problem = validate_item(item)
        if issue_id is None:
            result.problems.append(problem)
            continue
        if issue_id not in expected:
            result.problems.append(f"answer for unknown issue_id {issue_id}")
            continue
        if issue_id in result.accepted:
            result.problems.append(f"duplicate answer for issue_id {issue_id}; first kept")
            continue
        if accepted is None:
            result.rejected[issue_id] = problem
            continue
        accepted.notes = notes + accepted.notes
        result.accepted[issue_id] = accepted
        result.rejected.pop(issue_id, None)
    return result
