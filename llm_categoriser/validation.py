"""Parse and validate a model's answer for one batch (DESIGN §3).

The answer should be a JSON array of ``{issue_id, error_category, confidence_score,
reasoning}``. Common deviations are repaired and noted (code fences, prose around the JSON,
trailing commas, an object instead of an array, a lower-case or prefixed category, a 0–1 or
"90%" confidence, an over-long reason); anything that cannot be repaired is rejected for
that flag only, so that just those flags are asked again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .categories import parse_category

MAX_REASON_CHARS = 500
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")


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


def extract_items(text: str) -> tuple[list[Any], list[str]]:
    """Find the list of answer objects in ``text``; returns (items, repair notes)."""
    notes: list[str] = []
    body = text.strip()
    fenced = _FENCE.search(body)
    if fenced:
        body = fenced.group(1).strip()
        notes.append("code fence removed")
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        raise ValueError("no JSON in the answer")
    first = min(starts)
    if first > 0:
        notes.append("text before the JSON ignored")
    candidate = body[first:]
    closing = "]" if candidate[0] == "[" else "}"
    last = candidate.rfind(closing)
    if last >= 0 and last < len(candidate) - 1:
        notes.append("text after the JSON ignored")
        candidate = candidate[: last + 1]
    data: Any
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError:
        try:
            data = json.loads(_TRAILING_COMMA.sub(r"\1", candidate))
            notes.append("trailing commas removed")
        except json.JSONDecodeError:
            data = _salvage_objects(body[first:])
            if not data:
                raise ValueError("the answer is not valid JSON") from None
            notes.append("truncated or malformed JSON: complete objects kept")
    if isinstance(data, dict):
        for name in ("results", "issues", "items", "answers", "categorisations", "data"):
            if isinstance(data.get(name), list):
                notes.append(f"array taken from the object's {name!r} field")
                return data[name], notes
        notes.append("single object taken as a one-item array")
        return [data], notes
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON array, got {type(data).__name__}")
    return data, notes


def _issue_id(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and raw.strip().lstrip("#").isdigit():
        return int(raw.strip().lstrip("#"))
    return None


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
    if isinstance(raw, float) or "." in str(raw):
        if 0.0 <= value <= 1.0 and not (isinstance(raw, str) and raw.strip().endswith("%")):
            value *= 100
            note = "confidence scaled from 0-1"
    if not 0 <= value <= 100:
        return None, ""
    return int(round(value)), note


def validate_item(item: Any) -> tuple[int | None, Accepted | None, str]:
    if not isinstance(item, dict):
        return None, None, "an answer item is not a JSON object"
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    issue_id = _issue_id(lowered.get("issue_id", lowered.get("id")))
    if issue_id is None:
        return None, None, "an answer item has no integer issue_id"
    notes: list[str] = []
    category = parse_category(lowered.get("error_category", lowered.get("category")))
    if category is None:
        return issue_id, None, f"invalid category {lowered.get('error_category')!r}"
    raw_category = lowered.get("error_category", lowered.get("category"))
    if raw_category != category.value:
        notes.append("category normalised")
    confidence, note = parse_confidence(lowered.get("confidence_score", lowered.get("confidence")))
    if confidence is None:
        return issue_id, None, f"invalid confidence {lowered.get('confidence_score')!r}"
    if note:
        notes.append(note)
    reason = lowered.get("reasoning", lowered.get("reason"))
    if not isinstance(reason, str) or not reason.strip():
        return issue_id, None, "empty reasoning"
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
        notes.append("reasoning cut to 500 characters")
    return issue_id, Accepted(category.value, confidence, reason, notes), ""


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
