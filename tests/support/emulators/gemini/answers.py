"""What the emulated model answers: deterministic verdicts for the issue rows of a prompt,
corrupted answers for the answer faults, and the token counts of its usage metadata."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from support.emulators.gemini.wire import CATEGORIES, Fault

_HEADER_RE = re.compile(r"^\s*\|\s*issue_id\s*\|")
_ROW_RE = re.compile(r"^\s*\|\s*(-?\d+)\s*\|")


def parse_issue_rows(prompt_text: str) -> list[tuple[int, str]]:
    """``(issue_id, row_text)`` for each data row of the issue tables."""
    rows: list[tuple[int, str]] = []
    in_table = False
    for line in prompt_text.splitlines():
        if _HEADER_RE.match(line):
            in_table = True
            continue
        if not in_table:
            continue
        if not line.strip().startswith("|"):
            in_table = False
            continue
        match = _ROW_RE.match(line)
        if match:
            rows.append((int(match.group(1)), line.strip()))
    return rows


def _verdict(issue_id: int, row_text: str, categories: tuple[str, ...] = CATEGORIES) -> dict[str, Any]:
    digest = hashlib.sha256(row_text.encode("utf-8")).digest()
    category = categories[int.from_bytes(digest[:4], "big") % len(categories)]
    return {
        "issue_id": issue_id,
        "error_category": category,
        "confidence_score": 50 + digest[4] % 51,
        "reasoning": (
            f"Emulated verdict for issue {issue_id}: row hash {digest.hex()[:8]} maps to {category}."
        ),
    }


def default_answer(prompt_text: str, categories: tuple[str, ...] = CATEGORIES) -> str:
    """The emulator's deterministic answer to a categorisation prompt, each verdict one of
    ``categories`` (those the request offers: ``categories_of``)."""
    seen: set[int] = set()
    verdicts = []
    for issue_id, row in parse_issue_rows(prompt_text):
        if issue_id in seen:
            continue
        seen.add(issue_id)
        verdicts.append(_verdict(issue_id, row, categories or CATEGORIES))
    return json.dumps(verdicts, indent=2)


def _schema_enum(schema: Any) -> tuple[str, ...]:
    """The ``enum`` of the ``error_category`` property anywhere in a response schema."""
    if isinstance(schema, list):
        for item in schema:
            found = _schema_enum(item)
            if found:
                return found
    elif isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict) and isinstance(props.get("error_category"), dict):
            values = props["error_category"].get("enum")
            if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
                return tuple(values)
        for value in schema.values():
            found = _schema_enum(value)
            if found:
                return found
    return ()


def categories_of(request: Mapping[str, Any]) -> tuple[str, ...]:
    """The categories a request lets the model answer with, as a real model would keep to them:
    the ``error_category`` enum of its response schema (structured output: the API answers
    nothing else); without a schema, those of ``CATEGORIES`` its system instruction names (a
    model answers with the categories its instructions list); else all of ``CATEGORIES``."""
    config = request.get("generationConfig") or request.get("generation_config") or {}
    for key in ("responseSchema", "response_schema", "responseJsonSchema", "response_json_schema"):
        found = _schema_enum(config.get(key)) if isinstance(config, dict) else ()
        if found:
            return found
    system = request.get("systemInstruction") or request.get("system_instruction")
    return _named_categories("\n".join(_content_texts(system)))


@functools.lru_cache(maxsize=64)  # every request of a run repeats the system instruction
def _named_categories(text: str) -> tuple[str, ...]:
    named = tuple(c for c in CATEGORIES if re.search(rf"(?<![A-Za-z0-9_]){c}(?![A-Za-z0-9_])", text))
    return named or CATEGORIES


def apply_answer_fault(fault: str, text: str) -> tuple[str, str]:
    """Corrupt an answer; returns ``(text, finish_reason)``."""
    if fault == Fault.MALFORMED_JSON:
        return text.strip().replace('"', "'")[:-1] + ", }", "STOP"
    if fault == Fault.TRUNCATED_JSON:
        stripped = text.strip()
        cut = max(1, min(len(stripped) - 1, int(len(stripped) * 0.6)))
        return stripped[:cut], "MAX_TOKENS"
    try:
        items = json.loads(text)
    except ValueError:
        return text, "STOP"
    if not isinstance(items, list):
        return text, "STOP"
    objects = [item for item in items if isinstance(item, dict)]
    if fault == Fault.MISSING_IDS:
        items = items[:-1]
    elif fault == Fault.UNKNOWN_IDS:
        ids = [o["issue_id"] for o in objects if isinstance(o.get("issue_id"), int)]
        unknown = (max(ids) if ids else 0) + 1000
        items.append(_verdict(unknown, f"| {unknown} | unknown issue |"))
    elif fault == Fault.DUPLICATE_IDS and objects:
        duplicate = dict(objects[0])
        current = duplicate.get("error_category")
        index = CATEGORIES.index(current) if current in CATEGORIES else 0
        duplicate["error_category"] = CATEGORIES[(index + 1) % len(CATEGORIES)]
        duplicate["reasoning"] = "Second, conflicting verdict for the same issue."
        items.append(duplicate)
    return json.dumps(items, indent=2), "STOP"


def _content_texts(content: Any) -> list[str]:
    if not isinstance(content, dict):
        return []
    parts = content.get("parts") or []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def prompt_of(request: Mapping[str, Any]) -> str:
    contents = request.get("contents") or []
    if isinstance(contents, dict):
        contents = [contents]
    texts: list[str] = []
    for content in contents:
        if isinstance(content, dict) and content.get("role", "user") == "user":
            texts.extend(_content_texts(content))
    return "\n".join(texts)


def prompt_tokens_of(request: Mapping[str, Any]) -> int:
    contents = request.get("contents") or []
    if isinstance(contents, dict):
        contents = [contents]
    total = sum(count_tokens(t) for c in contents for t in _content_texts(c))
    system = request.get("systemInstruction") or request.get("system_instruction")
    return max(1, total + sum(count_tokens(t) for t in _content_texts(system)))


_PIECE = re.compile(r"[^\W\d_]+|\d|\r?\n|[ \t]+|_+|([^\w\s])\1*")

# The pieces of _PIECE found for a whole text at once (numpy over its code points): each
# character's kind, then the runs of one kind (of one character, for punctuation). A run of
# word characters counts by its first: a letter, a digit that is not decimal ("²"), other ("½").
_LETTER, _WORD_DIGIT, _WORD_OTHER, _DIGIT, _NEWLINE, _BLANK, _UNDERSCORE, _SYMBOL, _OTHER = range(9)
_KEYS = 1 << 21  # above every code point


def _kinds_where(*kinds: int) -> np.ndarray:
    return np.isin(np.arange(9), kinds)


# what a character's kind adds to its run's key: word characters make one run, blanks another,
# underscores another; punctuation gets its own code point below; -1: a piece of its own
_RUN_KEY = np.array(
    [
        _KEYS if k in (_LETTER, _WORD_DIGIT, _WORD_OTHER) else _KEYS + k if k in (_BLANK, _UNDERSCORE) else -1
        for k in range(9)
    ]
)
_ONE_TOKEN = _kinds_where(_WORD_DIGIT, _DIGIT, _NEWLINE)  # per piece
_BY_FOUR = _kinds_where(_WORD_OTHER, _UNDERSCORE, _SYMBOL)  # per four characters of a piece


def _kind(char: str) -> int:
    if char == "_":
        return _UNDERSCORE
    if char.isdecimal():
        return _DIGIT
    if char.isalnum():  # the rest of what the regular expression's \w holds
        return _LETTER if char.isalpha() else _WORD_DIGIT if char.isdigit() else _WORD_OTHER
    if char == "\n":
        return _NEWLINE
    if char in " \t":
        return _BLANK
    return _OTHER if char.isspace() else _SYMBOL


_BMP = 0x10000  # the characters of the Basic Multilingual Plane: their kinds in one table
_BMP_KINDS = np.array(
    [_OTHER if 0xD800 <= c < 0xE000 else _kind(chr(c)) for c in range(_BMP)], dtype=np.int64
)


@functools.lru_cache(maxsize=256)  # every request of a run repeats the system instruction
def count_tokens(text: str) -> int:
    """Tokens of ``text`` by a word-piece approximation (see the module docstring): as
    ``count_tokens_by_piece`` counts them, with the pieces found in C rather than one by one."""
    if not text:
        return 0
    try:
        data = text.encode("utf-32-le")
    except UnicodeEncodeError:  # a lone surrogate
        return count_tokens_by_piece(text)
    points = np.frombuffer(data, dtype=np.uint32).astype(np.int64)
    kinds = _BMP_KINDS[np.minimum(points, _BMP - 1)]
    if points.max() >= _BMP:  # beyond the table: each such character classified once
        wide = np.flatnonzero(points >= _BMP)
        distinct, where = np.unique(points[wide], return_inverse=True)
        kinds[wide] = np.array([_kind(chr(c)) for c in distinct], dtype=np.int64)[where]
    # a run of word characters, of blanks or of underscores is one piece, and so is a run of
    # one punctuation character (its key is the character); a digit, a newline is one alone
    keys = _RUN_KEY[kinds]
    symbols = kinds == _SYMBOL
    keys[symbols] = points[symbols]
    alone = keys < 0
    keys[alone] = -1 - np.flatnonzero(alone)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    lengths = np.diff(np.append(starts, points.size))
    kind = kinds[starts]
    blanks = (kind == _BLANK) & ~((lengths == 1) & (points[starts] == 32))
    return int(
        ((lengths[kind == _LETTER] + 5) // 6).sum()
        + np.count_nonzero(_ONE_TOKEN[kind] | blanks)
        + ((lengths[_BY_FOUR[kind]] + 3) // 4).sum()
    )


def count_tokens_by_piece(text: str) -> int:
    """``count_tokens`` one piece at a time (the definition the faster scans must agree with)."""
    count = 0
    for match in _PIECE.finditer(text):
        piece = match.group(0)
        first = piece[0]
        if first.isalpha():
            count += math.ceil(len(piece) / 6)
        elif first.isdigit() or first in "\r\n":
            count += 1
        elif first in " \t":
            count += 0 if piece == " " else 1
        else:
            count += math.ceil(len(piece) / 4)
    return count


def thinking_tokens_of(request: Mapping[str, Any], prompt_tokens: int) -> int:
    """Thought tokens the emulated model spends: none when the budget is 0, else a
    deterministic share of the prompt, up to the budget (dynamic: up to 8,192)."""
    config = request.get("generationConfig") or request.get("generation_config") or {}
    thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget", -1))
    if budget == 0:
        return 0
    wanted = 64 + prompt_tokens // 20
    return min(wanted, 8192 if budget is None or budget < 0 else budget)
