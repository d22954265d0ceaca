"""What the cascade's classifier sees of a flag: named features, hashed before training.

Every feature is a name (``rule=MORFOLOGIK_RULE_EN_GB``, ``word=cymru``, ``off=FALSE_POSITIVE``)
with a value. The names hold text of the corpus, so they never leave this process: the
classifier receives them through a hashing trick (``FeatureHasher``) and the saved model holds
only the hashed column numbers and their weights (docs/DESIGN.md §30).

Three sources, as the offline rules use them:

* the flag itself: rule id, type, message, suggestions, the flagged text and the words beside it
  in the highlighted context;
* the document and the report: how often the word occurs in its document, and in how many
  documents of the report it is flagged;
* the offline rules' verdict (category and confidence) on the flag.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Issue
from ..pages import context_parts

FEATURES_VERSION = 2
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)
_DIGITS = re.compile(r"\d+")
_QUOTED = re.compile(r"[‘'\"“][^‘'\"“”’]{1,40}[’'\"”]")


@dataclass(frozen=True)
class ReportStats:
    """How often each flagged word appears across the whole report (not only the selection)."""

    documents: dict[str, int]
    flags: dict[str, int]
    total_documents: int

    @classmethod
    def from_issues(cls, issues: Iterable[Issue]) -> ReportStats:
        documents: dict[str, set[tuple[str, str]]] = {}
        flags: Counter[str] = Counter()
        all_documents: set[tuple[str, str]] = set()
        for issue in issues:
            word = normalise_word(issue.issue)
            documents.setdefault(word, set()).add((issue.subject, issue.filename))
            flags[word] += 1
            all_documents.add((issue.subject, issue.filename))
        return cls({w: len(d) for w, d in documents.items()}, dict(flags), len(all_documents))


@dataclass(frozen=True)
class FlagEvidence:
    """Everything the features of one flag are computed from."""

    issue: Issue
    hints: dict[str, int | float | str | bool]
    offline_category: str
    offline_confidence: int
    fragment: str = ""  # the flagged word is the start or end of a longer word of its document


def normalise_word(text: str) -> str:
    return " ".join((text or "").lower().split())


def _bucket(value: float) -> str:
    """0, 1, 2, 3-4, 5-8, ...: a log2 bucket, so counts become a few categories."""
    if value <= 0:
        return "0"
    return str(int(math.log2(value)) + 1)


def _shape(word: str) -> str:
    if not word:
        return "empty"
    if word.isupper() and len(word) > 1:
        return "upper"
    if word[:1].isupper() and word[1:].islower():
        return "title"
    if word.islower():
        return "lower"
    if word.isdigit():
        return "digits"
    if any(ch.isdigit() for ch in word):
        return "alnum"
    if word.isalpha():
        return "mixed"
    return "symbols"


def _suggestions(raw: str) -> tuple[list[str], bool]:
    more = bool(re.search(r"\(\+\d+ more\)\s*$", raw or ""))
    text = re.sub(r"\s*\(\+\d+ more\)\s*$", "", raw or "")
    return [s for s in (p.strip() for p in text.split(", ")) if s], more


def _relation(word: str, suggestion: str) -> str:
    """How LanguageTool's first suggestion differs from the flagged text."""
    if not suggestion:
        return "none"
    if suggestion == word:
        return "same"
    low_w, low_s = word.lower(), suggestion.lower()
    if low_w == low_s:
        return "case"
    squash_w, squash_s = re.sub(r"[\s\-]", "", low_w), re.sub(r"[\s\-]", "", low_s)
    if squash_w == squash_s:
        return "spacing"
    if low_s.startswith(low_w) or low_s.endswith(low_w):
        return "extends"
    if low_w.startswith(low_s) or low_w.endswith(low_s):
        return "shortens"
    if sorted(low_w) == sorted(low_s):
        return "anagram"
    shared = len(set(low_w) & set(low_s)) / max(1, len(set(low_w) | set(low_s)))
    return f"overlap{int(shared * 4)}"


def _edge(char: str) -> str:
    """What is next to the flagged text in the context: a letter, a digit, a space, a sign."""
    if not char:
        return "none"
    if char.isalpha():
        return "letter"
    if char.isdigit():
        return "digit"
    if char.isspace():
        return "space"
    return char if char in "-\\$*_|/([{)]}.,;:'\"’‘“”" else "other"


def _message_template(message: str) -> str:
    text = _QUOTED.sub("Q", message.strip().lower())
    return _DIGITS.sub("0", text)[:120]


def flag_features(evidence: FlagEvidence, stats: ReportStats) -> dict[str, float]:
    """The named features of one flag (names carry corpus text; hash them before storing)."""
    issue = evidence.issue
    rule = (issue.rule_id or "").upper()
    kind = (issue.type or "").lower()
    word = (issue.issue or "").strip()
    low = normalise_word(word)
    before, match, after = context_parts(issue.context or "")
    suggestions, more = _suggestions(issue.suggestions)
    first = suggestions[0] if suggestions else ""

    f: dict[str, float] = {
        "bias": 1.0,
        f"rule={rule}": 1.0,
        f"family={rule.split('_')[0]}": 1.0,
        f"type={kind}": 1.0,
        f"rule_type={rule}|{kind}": 1.0,
        f"message={_message_template(issue.message)}": 1.0,
        f"word={low}": 1.0,
        f"rule_word={rule}|{low}": 1.0,
        f"cased={word}": 1.0,
        f"shape={_shape(word)}": 1.0,
        f"length={_bucket(len(word))}": 1.0,
        f"tokens={min(len(word.split()), 4)}": 1.0,
        f"nsugg={len(suggestions)}{'+' if more else ''}": 1.0,
        f"relation={_relation(word, first)}": 1.0,
        f"suggestion={first.lower()}": 1.0,
        f"subject={issue.subject.lower()}": 1.0,
    }
    for token in set(_WORD.findall(issue.message.lower())):
        f[f"msg:{token}"] = 1.0
    if not word.isascii():
        f["non_ascii"] = 1.0
    if match and match != word:
        f["match_differs"] = 1.0
    left = _WORD.findall(before)
    right = _WORD.findall(after)
    f[f"left={left[-1].lower() if left else '^'}"] = 1.0
    f[f"right={right[0].lower() if right else '$'}"] = 1.0
    if before[-1:].isalpha() or after[:1].isalpha():
        f["glued"] = 1.0
    f[f"before={_edge(before[-1:])}"] = 1.0
    f[f"after={_edge(after[:1])}"] = 1.0
    if evidence.fragment:
        f[f"fragment={evidence.fragment}"] = 1.0
        f[f"fragment_shape={evidence.fragment}|{_shape(word)}"] = 1.0
        f[f"fragment_rule={evidence.fragment}|{rule}"] = 1.0
    for name, probe in (("table", "|"), ("maths", "$"), ("bold", "**"), ("link", "](")):
        if probe in (issue.context or "").replace(f"**{match}**", match):
            f[f"context_{name}"] = 1.0

    hints = evidence.hints
    f[f"doc_lang={hints.get('doc_lang', 'en')}"] = 1.0
    for name in ("freq", "sugg_freq", "join_freq"):
        if name in hints:
            f[f"{name}={_bucket(float(hints[name]))}"] = 1.0
    documents = stats.documents.get(low, 0)
    f[f"report_docs={_bucket(documents)}"] = 1.0
    f[f"report_flags={_bucket(stats.flags.get(low, 0))}"] = 1.0
    if stats.total_documents:
        f["report_doc_share"] = documents / stats.total_documents

    category = evidence.offline_category
    confidence = evidence.offline_confidence
    f[f"off={category}"] = 1.0
    f[f"off={category}@{confidence // 10}"] = 1.0
    f[f"off_rule={category}|{rule}"] = 1.0
    subject = issue.subject.lower()
    f[f"off_word={category}|{low}"] = 1.0
    f[f"subject_word={subject}|{low}"] = 1.0
    f[f"subject_rule={subject}|{rule}"] = 1.0
    f[f"subject_off={subject}|{category}"] = 1.0
    f["off_confidence"] = confidence / 100
    return f
