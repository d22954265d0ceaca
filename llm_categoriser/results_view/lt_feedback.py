"""Feedback for LanguageTool: words to accept per subject, and rules that are nearly always wrong.

* A **word** goes to a subject's ``spelling.txt`` when LanguageTool flagged it with a spelling
  rule (type ``misspelling``), at least one of its flags in that subject was judged
  ``FALSE_POSITIVE`` with confidence at least ``MIN_WORD_CONFIDENCE``, and no answered flag of
  the same word (ignoring case) in that subject was judged anything else. One dissenting answer
  is enough to keep the word out: accepting a real misspelling is worse than one more false alarm.
* A **rule** is a candidate to disable when it raised at least ``MIN_RULE_FLAGS`` answered flags
  and at least ``MIN_RULE_SHARE`` of them were judged ``FALSE_POSITIVE``.

The thresholds are justified in docs/DESIGN.md §28.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from ..atomic import atomic_write_text
from ..layout import Layout
from .flags import Flag

FALSE_POSITIVE = "FALSE_POSITIVE"
SPELLING_TYPES = frozenset({"misspelling"})
MIN_WORD_CONFIDENCE = 80
MIN_RULE_FLAGS = 5
MIN_RULE_SHARE = 0.9

# A word LanguageTool's word lists can hold: letters (any script), inner apostrophes, hyphens and
# full stops (``e.g``), at least two characters, no spaces or digits. PDF-conversion debris (ligature code
# points, replacement characters, mojibake such as ``â€``) is never a word to accept.
_WORD = re.compile(r"[^\W\d_](?:[\w'’.\-]*[^\W_])?")
_DEBRIS = re.compile("[\ufb00-\ufb4f\ufffd\u0080-\u009f]|\u00e2\u20ac|\u00c3[\u0080-\u00bf]")


class RuleCount(BaseModel):
    rule_id: str
    flags: int
    false_positives: int

    @property
    def share(self) -> float:
        return self.false_positives / self.flags if self.flags else 0.0


class SubjectFeedback(BaseModel):
    subject: str
    words: list[str]
    rules: list[RuleCount]


def is_spelling_flag(flag: Flag) -> bool:
    return flag.type.strip().lower() in SPELLING_TYPES


def acceptable_word(text: str) -> bool:
    """A single letter is never listed: accepting ``i`` everywhere would hide real errors."""
    return len(text) > 1 and bool(_WORD.fullmatch(text)) and not _DEBRIS.search(text)


def spelling_words(flags: Iterable[Flag], min_confidence: int = MIN_WORD_CONFIDENCE) -> list[str]:
    """The words judged correctly spelled (see the module docstring), sorted, one spelling each."""
    confident: dict[str, str] = {}
    vetoed: set[str] = set()
    for flag in flags:
        if not (flag.answered and is_spelling_flag(flag)):
            continue
        word = flag.issue.strip()
        key = word.casefold()
        if flag.error_category != FALSE_POSITIVE:
            vetoed.add(key)
        elif (flag.confidence_score or 0) >= min_confidence and acceptable_word(word):
            confident.setdefault(key, word)
    return sorted((w for k, w in confident.items() if k not in vetoed), key=lambda w: (w.casefold(), w))


def rule_counts(flags: Iterable[Flag]) -> list[RuleCount]:
    """Answered flags and false positives per rule, most false positives first."""
    total: dict[str, int] = defaultdict(int)
    false: dict[str, int] = defaultdict(int)
    for flag in flags:
        if not flag.answered or not flag.rule_id:
            continue
        total[flag.rule_id] += 1
        false[flag.rule_id] += flag.error_category == FALSE_POSITIVE
    counts = [RuleCount(rule_id=r, flags=n, false_positives=false[r]) for r, n in total.items()]
    return sorted(counts, key=lambda c: (-c.share, -c.flags, c.rule_id))


def rules_to_disable(
    counts: Iterable[RuleCount], min_flags: int = MIN_RULE_FLAGS, min_share: float = MIN_RULE_SHARE
) -> list[RuleCount]:
    return [c for c in counts if c.flags >= min_flags and c.share >= min_share]


def subject_feedback(flags: Sequence[Flag]) -> list[SubjectFeedback]:
    by_subject: dict[str, list[Flag]] = defaultdict(list)
    for flag in flags:
        by_subject[flag.subject].append(flag)
    return [
        SubjectFeedback(
            subject=subject,
            words=spelling_words(items),
            rules=rules_to_disable(rule_counts(items)),
        )
        for subject, items in sorted(by_subject.items())
    ]


def words_file(subject: str, words: Sequence[str]) -> str:
    header = [
        f"# Words judged correctly spelled in {subject}: LanguageTool flagged them with a spelling",
        f"# rule, the triage called them FALSE_POSITIVE (confidence >= {MIN_WORD_CONFIDENCE}) and",
        "# never anything else.",
        "# Append to LanguageTool's spelling.txt (accept) or ignore.txt (skip); see the README.",
    ]
    return "\n".join([*header, *words]) + "\n"


def rules_file(scope: str, rules: Sequence[RuleCount]) -> str:
    header = [
        f"# LanguageTool rules whose flags were nearly all false positives ({scope}):",
        f"# at least {MIN_RULE_FLAGS} answered flags, at least {MIN_RULE_SHARE:.0%} FALSE_POSITIVE.",
        "# Columns: rule id, false positives, flags. For --disable:",
        "#   grep -v '^#' disable-rules.txt | cut -f1 | paste -sd, -",
    ]
    lines = [f"{r.rule_id}\t{r.false_positives}\t{r.flags}" for r in rules]
    return "\n".join([*header, *lines]) + "\n"


def write_feedback(
    layout: Layout, flags: Sequence[Flag], subjects: Iterable[str]
) -> tuple[list[SubjectFeedback], list[RuleCount]]:
    """Write each subject's word list and rule list and the rule list of all subjects (empty
    lists where a subject has no flags); return what was written."""
    found = {f.subject: f for f in subject_feedback(flags)}
    per_subject = [found.get(s, SubjectFeedback(subject=s, words=[], rules=[])) for s in subjects]
    overall = rules_to_disable(rule_counts(flags))
    for item in per_subject:
        atomic_write_text(layout.feedback_words(item.subject), words_file(item.subject, item.words))
        atomic_write_text(layout.feedback_subject_rules(item.subject), rules_file(item.subject, item.rules))
    atomic_write_text(layout.feedback_rules, rules_file("all subjects", overall))
    return per_subject, overall
