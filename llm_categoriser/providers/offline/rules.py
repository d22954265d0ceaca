"""Offline heuristic categoriser: triage a LanguageTool flag without a model or a network.

The rules decide from what LanguageTool says (rule id, issue type, message, suggestions) and from
what the document shows: the highlighted context, the page's Markdown, how often the flagged word,
its suggestion and the word it would form with its neighbours occur in the whole document,
characters and layouts that only PDF-to-Markdown conversion produces (ligatures, mojibake, broken
hyphenation, words chopped by table cells, joined words, stray markup), Welsh and other foreign
languages, spoken-language transcripts, proper nouns, maths notation and US spellings.

Two entry points are called by the pipeline:

* ``document_hints`` runs at planning time, once per issue, with the whole document, and returns a
  handful of JSON-serialisable values: how often the word occurs in the document, how common
  the word and its suggestion are in English (and in the document's other language) according to
  wordfreq's lists, and how many of its neighbours are no English words.  The token count of a
  document is built once and cached, and wordfreq's lists are loaded on first use, so each
  further call costs microseconds.
* ``classify`` is deterministic and returns ``(category, confidence, reason)``; it needs no
  word list of its own.

How the rules are ordered:

1. Conversion artefacts in the flagged text, whatever the rule (ligatures, mojibake, other scripts,
   ``assess- ment``, ``Blu -ray``, soft hyphens, Markdown/HTML markup): PARSING_ERROR.
2. One handler per family of LanguageTool rules, chosen from the rule id and issue type: spelling
   (MORFOLOGIK/Hunspell), word coherency, locale, diacritics, compounds and hyphens, repetitions,
   unpaired quotes, spacing and punctuation, commas, a/an, capitalisation, names written with the
   wrong capitals or without their apostrophe, possessive apostrophes, misused phrases, style,
   grammar.
3. A default per issue type.

A flag that LanguageTool raises as an error is kept as one unless the evidence rules it out (a
conversion artefact, another language, a transcript, maths, a term used throughout the document,
a word that is not a slip of a common word); a dismissal gets a confidence of 75 or more only on
strong evidence (docs/DESIGN.md §21).  Confidences were set on one half of the reference corpus's
subjects and are measured on the other half (``benchmarks/evaluate_offline.py``).  The rules
use rule families, issue types, text features and general word frequencies, never words or rows
of that corpus.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Protocol

from ...categories import Category

Result = tuple[Category, int, str]


class FlagText(Protocol):
    """What the rules read of a flag: a report's ``Issue``, or the lighter ``FlagSeen`` that the
    provider makes of a planned flag."""

    @property
    def issue(self) -> str: ...
    @property
    def context(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def suggestions(self) -> str: ...


# --------------------------------------------------------------------------------------------
# Language knowledge: function words (general vocabulary, not corpus vocabulary)
# --------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ENGLISH_FUNCTION_WORDS = _words(
    """the and of to in is that for it as with was on be by this are or an at from which not have
    has but they their can will should what how when who we you he she his her there were been would
    could about into these those also more than other such them its if may must one all some any each
    do does did between because through after before while where why our your my me us him then so
    very only just being had most many much both own same few out up down over under again further
    once here whether within without during against among upon"""
)
_AMBIGUOUS = _words("a in an is was die son me no so see more fast also will hat tu te")
FOREIGN_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(w for w in words.split() if w not in ENGLISH_FUNCTION_WORDS and w not in _AMBIGUOUS)
    for lang, words in {
        "fr": """le la les des du un une et est dans pour que qui pas ne sur avec au aux ce cette ces je
            tu il elle nous vous ils elles mon ma mes ton ta tes son sa ses leur leurs être avoir fait
            très mais où à c'est j'ai suis sont ai avons avez ont était aussi j'aime qu'est-ce quel
            quelle beaucoup bien trop peu chez toujours jamais parce comme faire aller""",
        "de": """der die das den dem des ein eine einen einem einer und ist nicht ich du er sie es wir
            ihr mit auf für von zu im auch aber oder wie wo mein meine meinen dein deine sein seine
            haben habe hat sind bin bist gern sehr kann ich's man noch nach bei zum zur über weil dass
            wenn immer schon gibt viel mehr machen gehen""",
        "es": """el los las del y es una que por para con se su sus mi mis tu te lo al como más pero
            muy estoy está están son soy hay también yo nosotros ella ellos un unos unas este esta
            estos estas ese esa eso porque cuando donde dónde qué cómo tengo tiene me gusta mucho fue
            era ser estar hacer voy ir""",
        "cy": """y yr yn ac i o ar gyda mae ein eich ei eu am wedi bod hefyd neu fel ond sy sydd dros
            gan ble beth pam ydy oes rydw dw fy ti chi nhw hi fe fo dyma hyn hwn hon iawn gwaith ysgol
            cymraeg cymru cymreig a'r i'r o'r yw roedd bydd gallu dylai rhaid drwy trwy ymhlith rhwng
            ni nid dim""",
    }.items()
}

# Welsh orthography: digraphs, w and y as vowels, circumflexes, mutations and common endings.
WELSH_LETTERS = frozenset("ŵŷâêîôûŴŶÂÊÎÔÛ")
WELSH_FEATURES = tuple(
    re.compile(p)
    for p in (
        r"^(?:ll|rh|ngh|ng|mh|nh|chw|gw|cw|tw|dw|bw|wy)",  # initial clusters and mutations
        r"dd",
        r"ll",
        r"ff",
        r"wy|yw",
        r"ae|oe|wy",
        r"ch$|wch|lch",
        r"ydd|aeth|iad|wyr|ion$|iau$|au$|edd$|wyd|ol$",  # common endings
        r"[^aeiouwy\W]w[^aeiouwy\W]|^w[^aeiouwy\W]",  # w as a vowel
        r"[^aeiouwy\W]y[^aeiouwy\W]|^y[^aeiouwy\W]",  # y as a vowel
    )
)

# Compounds that British English normally hyphenates when written as two words.
_HYPHEN_PREFIXES = _words(
    """self well non anti co pre post semi multi cross long short high low ill half all ever full
    part cost time world first second third one two three four five ten hard soft open close
    free"""
)
_HYPHEN_SECOND_ENDINGS = ("ed", "ing", "ly", "ful", "less", "free", "based", "led", "like", "wide")

# US spelling -> British spelling rewrites (applied to the flagged word, compared with a suggestion);
# a replacement is kept as the parts around its one group reference, "\1" (one part: none).
_US_UK = tuple(
    (re.compile(p), tuple(r.split("\\1")))
    for p, r in (
        (r"or(s?)$", r"our\1"),
        (r"or(ed|ing|ful|ite|ites|able)$", r"our\1"),
        (r"ter(s?)$", r"tre\1"),
        (r"ize", "ise"),
        (r"iza", "isa"),
        (r"yze", "yse"),
        (r"ense$", "ence"),
        (r"og$", "ogue"),
        (r"l(ed|ing|er|ers)$", r"ll\1"),
        (r"aging$", "ageing"),
        (r"ment$", "ement"),
        (r"e", "ae"),
        (r"e", "oe"),
        (r"ll$", "l"),
        (r"ll(s|ment)$", r"l\1"),
        (r"z", "s"),
        (r"o", "ou"),
        (r"ay", "ey"),
        (r"ered", "red"),
        (r"er(ness|ed)", r"r\1"),
        (r"ense", "ence"),
        (r"ck", "que"),
        (r"gram$", "gramme"),
    )
)

# --------------------------------------------------------------------------------------------
# Word frequencies (wordfreq: English, and the languages the documents teach)
# --------------------------------------------------------------------------------------------

# wordfreq ships its lists in its wheel; the "small" lists (words used at least once per million)
# load in a fraction of a second (docs/DESIGN.md §21).  wordfreq has no Welsh list: Welsh is
# recognised by its orthography (``_welsh_score``).
LANGUAGE_NAMES = {"fr": "French", "de": "German", "es": "Spanish", "cy": "Welsh"}
WORDFREQ_LISTS = {"en": "small", "fr": "small", "de": "small", "es": "small"}


def wordfreq_list_path(lang: str) -> str:
    """The file of wordfreq's list of ``lang``, found without importing wordfreq (its import
    loads a tokenizer, ftfy and langcodes, which planning never uses: docs/DESIGN.md §21)."""
    spec = importlib.util.find_spec("wordfreq")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("wordfreq is not installed: run `make setup` (it is in requirements.txt)")
    folder = next(iter(spec.submodule_search_locations))
    return os.path.join(folder, "data", f"{WORDFREQ_LISTS[lang]}_{lang}.msgpack.gz")


@cache
def _zipfs(lang: str) -> dict[str, float]:
    """The Zipf frequency of every word of wordfreq's list of ``lang``, loaded on first use.

    The list is wordfreq's "cBpack" (``wordfreq.read_cBpack``): a header, then one list of words
    per centibel of frequency, the n-th list holding the words of frequency ``10 ** (-n / 100)``,
    the frequency ``wordfreq.get_frequency_dict`` gives them.
    """
    import msgpack  # wordfreq's own dependency; only planning needs it

    with gzip.open(wordfreq_list_path(lang), "rb") as handle:
        data = msgpack.load(handle, raw=False)
    header = data[0]
    if not isinstance(header, dict) or header.get("format") != "cB" or header.get("version") != 1:
        raise ValueError(f"{wordfreq_list_path(lang)}: not a wordfreq list of this version ({header!r})")
    zipfs: dict[str, float] = {}
    for index, bucket in enumerate(data[1:]):
        if bucket:
            zipfs.update(dict.fromkeys(bucket, round(math.log10(10 ** (-index / 100)) + 9, 2)))
    return zipfs


@lru_cache(maxsize=1 << 16)
def zipf(word: str, lang: str = "en") -> float:
    """Zipf frequency of a single word (log10 of uses per billion words; 0: not a known word).

    About 7 for "the", 4 for "receive", 3 for "teh" (a typing slip common enough to be counted),
    1 to 2 for rare or specialist words. Remembered: a corpus asks about the same words again
    and again (flagged words, their suggestions and neighbours).
    """
    if lang not in WORDFREQ_LISTS or not word or " " in word:
        return 0.0
    return _zipfs(lang).get(word.lower().replace("’", "'"), 0.0)


# --------------------------------------------------------------------------------------------
# Text features
# --------------------------------------------------------------------------------------------

LIGATURES = frozenset("ﬀﬁﬂﬃﬄﬅﬆ")
MOJIBAKE = re.compile(r"Ã.|â€|Â[^\w]|Ã|ï¿½|\ufffd|&#\d+;|&[a-z]+;|\\u[0-9a-f]{4}")
_SAFE_SYMBOLS = frozenset("‘’“”–—…•£€°±×÷√≤≥≠≈∞πθαβγδλμσΣΩΔ·′″→←↔∴∵∠⊥∈∪∩")
_BROKEN_HYPHEN = re.compile(r"[^\W\d_]\s+[-‐‑][^\W\d_]|[^\W\d_][-‐‑]\s+[^\W\d_]")
_MARKUP = re.compile(r"<[/a-zA-Z][^>]*>|\]\(|_page_|\{\d+\}|\\\*|\*\*")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_PAUSE = re.compile(r"\(\.\)|\(\d\)")
# Fillers: um, umm, erm, er, uh, mm, mmm as whole words. Each branch starts with its letter, so the
# search skips to those letters instead of trying every position of a page; "(?<!\w.)" after the
# first letter is "\b" before it (no word character precedes it).
_FILLER = re.compile(r"(?:u(?<!\w.)(?:m+|h)|e(?<!\w.)rm?|m(?<!\w.)m+)\b")
_MATH = re.compile(
    r"\$|\\[a-zA-Z]{2,}|\^|[≤≥±×÷√∑∫≠≈]|\d\s*[=+*/<>]\s*\d"
    r"|(?<![\w'’])[a-zA-Z]\s*[=<>]\s*[\w(]|[\w)]\s*=\s*(?<![\w'’])[a-zA-Z\d](?![a-zA-Z])"
)
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_MARK_CODE = re.compile(r"^(?:[A-Z]{1,2}\d|[a-z]?\d+[a-z]?|[ivx]+|[A-Z]{1,3})$")
_AGREEMENT = re.compile(r"AGREEMENT|_AGR\b|A_NNS|DT_DT|NON3PRS|MD_BASEFORM|BEEN_PART|HAVE_PART|SUBJECT_VERB")
_SPACING_RULE = re.compile(r"SPACE|PARENTHESIS|DOUBLE_PUNCTUATION|_PUNCT$|PUNCTUATION")
# Text touching a word on the left: letters, or a bracket, quote or slash right after letters
# ("stepchild(ren)", "instring(x,stringa"); a bracket after a space opens an aside ("plan (Jeremaih").
_GLUED_BEFORE = re.compile(r"\w[(\[‘'’/*,]?$")
# A decade written with an apostrophe: 1970's, '60's
_DECADE = re.compile(r"['’]?\d+['’]s")
# An unclosed call in program code before the flag: output("Enter name: ...
_CODE_CALL = re.compile(r"[A-Za-z_]\w*\([^()]*$")
# The patterns the rules use, compiled once (a call with a pattern string looks it up every time)
_BOLD_MATCH = re.compile(r"\*\*(.+?)\*\*")
_LETTERS_AT_END = re.compile(r"([^\W\d_]+)[\s|]*$")
_LETTERS_AT_START = re.compile(r"^[\s|]*([^\W\d_]+)")
_MORE_TAIL = re.compile(r"\s*\(\+\d+ more\)\s*$")
_MORE_COUNT = re.compile(r"\(\+(\d+) more\)")
_SPACE_OR_HYPHEN = re.compile(r"[\s\-‐‑]")
_CELL_EDGE_AFTER = re.compile(r"^\s*(?:\||$)")
_CELL_EDGE_BEFORE = re.compile(r"(?:\||^)\s*$")
_SPLIT_CELL = re.compile(r"[a-z]\s*\|\s*[a-z]")
_CALL_PARENS = re.compile(r"^\(\)")
_LINK_TEXT_END = re.compile(r"^[^\[\]()]{0,60}\]\(")
_SENTENCE_BREAK = re.compile(r"[.!?]+(?=\s)")
_HYPHEN_OPENS_AFTER = re.compile(r"^\s+[-‐‑][^\W\d_]")
_HYPHEN_CLOSES_BEFORE = re.compile(r"[^\W\d_][-‐‑]\s+$")
_JOINING_MARK_AT_END = re.compile(r"['’‘\[–-]$")
_CAPITALS_AT_END = re.compile(r"[A-Z]{2,}\s*\|?\s*$")
_CAPITALS_AT_START = re.compile(r"^\s*\|?\s*[A-Z]{2,}")
_GLUED_AFTER = re.compile(r"^['’\w[]")
_NEXT_WORD = re.compile(r"^\s*([^\W\d_]+)")
_WIDE_GAP = re.compile(r"\S\s{2,}\S")
_DOUBLE_SPACE = re.compile(r"\s{2,}")
_WORD_AFTER = re.compile(r"^\s*[^\W\d_]{2,}")
_LETTERS = re.compile(r"[^\W\d_]+")
_USUAL_COLLOCATION = re.compile(r"usual (?:preposition|collocation)")
_NEXT_WORD_PAST_STARS = re.compile(r"\s*\**\s*([^\W\d_]+)")
_APOSTROPHE = re.compile(r"['’]")
# Words that do not carry the meaning of a phrase: a compound before one is not modifying a noun,
# and a wording that only drops them says the same thing.
_LINK_WORDS = ENGLISH_FUNCTION_WORDS | _words("a an the to in is and or as at on of not")
# Function words that still say how much or how many: a wording that drops one ("of any of" ->
# "of") says something else, unlike one that drops a preposition ("outside of" -> "outside").
_QUANTIFIERS = _words("any all some each every both either neither few many much most no none several")


# --------------------------------------------------------------------------------------------
# Document profile (built once per document) and hints
# --------------------------------------------------------------------------------------------

_SEPARATORS = tuple('.,;:!?()[]{}"“”*_|<>/\\#$=+…•')


@dataclass
class _DocProfile:
    tokens: Counter
    language: str

    def count_any_case(self, word: str, quoted: bool = False) -> int:
        """Occurrences in any capitalisation; with ``quoted``, also in single quotes or with 's."""
        get = self.tokens.get
        total = 0
        for form in {word, word.lower(), word.capitalize(), word.upper()}:
            total += get(form, 0)
            if quoted:
                total += get("'" + form, 0) + get(form + "'", 0) + get("'" + form + "'", 0)
                total += get("‘" + form, 0) + get(form + "’", 0) + get(form + "'s", 0) + get(form + "’s", 0)
        return total


# Every function word in its lower-case and capitalised forms, with its language.
_LANGUAGE_FORMS: tuple[tuple[str, str], ...] = tuple(
    (form, lang)
    for lang, words in (("en", ENGLISH_FUNCTION_WORDS), *FOREIGN_FUNCTION_WORDS.items())
    for word in sorted(words)
    for form in {word, word.capitalize()}
)
_PROFILE_CACHE: dict[tuple, _DocProfile] = {}
# Each profile holds a document's token counts; the planner asks about one document at a time,
# so a few suffice (a planning worker of a large run would otherwise keep hundreds in memory).
_PROFILE_CACHE_SIZE = 8
# The pipeline asks about one document many times in a row: remember the last text object.
_LAST_PROFILE: list = [None, None]


def _doc_key(text: str) -> tuple:
    """A cheap identity for a document's text (length, both ends and a sample of the middle)."""
    stride = max(1, len(text) // 509)
    return (len(text), text[:200], text[-200:], text[::stride])


def _profile(text: str) -> _DocProfile:
    if _LAST_PROFILE[0] is text:
        return _LAST_PROFILE[1]
    key = _doc_key(text)
    prof = _PROFILE_CACHE.get(key)
    if prof is None:
        cleaned = text
        for ch in _SEPARATORS:
            if ch in cleaned:
                cleaned = cleaned.replace(ch, " ")
        tokens = Counter(cleaned.split())
        votes = dict.fromkeys(("en", *FOREIGN_FUNCTION_WORDS), 0)
        get = tokens.get
        for form, lang in _LANGUAGE_FORMS:
            n = get(form)
            if n:
                votes[lang] += n
        english = votes.pop("en")
        best_lang, best = max(votes.items(), key=lambda item: (item[1], item[0]))
        share = best / (best + english) if best + english else 0.0
        prof = _DocProfile(tokens=tokens, language=best_lang if share >= 0.08 else "en")
        if len(_PROFILE_CACHE) >= _PROFILE_CACHE_SIZE:
            _PROFILE_CACHE.pop(next(iter(_PROFILE_CACHE)))
        _PROFILE_CACHE[key] = prof
    _LAST_PROFILE[:] = [text, prof]
    return prof


def _split_context(context: str, issue_text: str) -> tuple[str, str, str]:
    """(before, match, after) of LanguageTool's highlighted context; the match is wrapped in ``**``."""
    if issue_text:
        marker = "**" + issue_text + "**"
        i = context.find(marker)
        if i >= 0:
            return context[:i], issue_text, context[i + len(marker) :]
    m = _BOLD_MATCH.search(context)
    if m:
        return context[: m.start()], m.group(1), context[m.end() :]
    return context, issue_text, ""


def _neighbour_fragments(before: str, after: str) -> tuple[str, str]:
    """The letters touching the match on each side, skipping spaces and table bars."""
    b = _LETTERS_AT_END.search(before.rstrip("."))
    a = _LETTERS_AT_START.match(after)
    return (b.group(1) if b else ""), (a.group(1) if a else "")


def _spelling_rule(rule_id: str) -> bool:
    rule = rule_id.upper()
    return rule.startswith(("MORFOLOGIK", "HUNSPELL")) or rule.endswith("_SPELLING_RULE")


def word_hints(issue: FlagText, doc_lang: str = "en") -> dict[str, float]:
    """How common the flagged word and its first suggestion are (``zipf``), independent of the document.

    ``zipf``: the flagged word in English; ``sugg_zipf``: LanguageTool's first suggestion in
    English; ``lang_zipf``: the flagged word in the document's other language, when it has one;
    ``alien``: how many of the two words either side of it in LanguageTool's context are
    lower-case words that English does not know (the flag sits in a phrase of another language).
    """
    word = (issue.issue or "").strip()
    hints: dict[str, float] = {}
    if not word:
        return hints
    hints["alien"] = _alien_neighbours(issue)
    if " " in word:
        return hints
    hints["zipf"] = zipf(word)
    first = _suggestion_list(issue.suggestions)[:1]
    if first and " " not in first[0]:
        hints["sugg_zipf"] = zipf(first[0])
    if doc_lang in WORDFREQ_LISTS and doc_lang != "en":
        hints["lang_zipf"] = zipf(word, doc_lang)
    return hints


def _alien_neighbours(issue: FlagText) -> int:
    """Lower-case words of three letters or more, next to the flag, that English does not know."""
    before, _match, after = _split_context(issue.context or "", issue.issue or "")
    near = _WORD.findall(before)[-2:] + _WORD.findall(after)[:2]
    return sum(1 for w in near if len(w) >= 3 and w.islower() and zipf(w) == 0)


def document_hints(issue: FlagText, document_text: str) -> dict[str, int | float | str | bool]:
    """Document-level evidence for one issue: a handful of JSON-serialisable values.

    ``doc_lang``: the main non-English language of the document ("fr", "de", "es", "cy") or "en";
    ``freq``: occurrences of the flagged word in the document (any capitalisation);
    ``sugg_freq``: occurrences of LanguageTool's first suggestion;
    ``join_freq``: occurrences of the word formed by joining the flagged text to the letters touching
    it in the context (a word split apart by conversion).
    """
    prof = _profile(document_text or "")
    hints: dict[str, int | float | str | bool] = {"doc_lang": prof.language}
    word = (issue.issue or "").strip()
    if not word:
        return hints
    hints.update(word_hints(issue, prof.language))
    first = (issue.suggestions or "").split(", ", 1)[0].split(" (+", 1)[0].strip()
    if first and " " not in first:
        hints["sugg_freq"] = prof.count_any_case(first)
    if " " in word:
        return hints
    hints["freq"] = prof.count_any_case(word, quoted=True)
    if word.isalpha() and _spelling_rule(issue.rule_id or ""):
        before, _match, after = _split_context(issue.context or "", issue.issue)
        prev, nxt = _neighbour_fragments(before, after)
        candidates = [prev + word, word + nxt, prev + word + nxt]
        if prev and prev[-1].lower() == word[0].lower():  # conversion sometimes doubles a boundary letter
            candidates.append(prev + word[1:])
        if nxt and nxt[0].lower() == word[-1].lower():
            candidates.append(word + nxt[1:])
        best = 0
        for cand in candidates:
            if cand != word and len(cand) >= 3:
                n = prof.count_any_case(cand)
                best = max(best, n if len(cand) >= 4 else n // 2)
        hints["join_freq"] = best
    return hints


# --------------------------------------------------------------------------------------------
# Helpers for classify
# --------------------------------------------------------------------------------------------


def _suggestion_list(raw: str) -> list[str]:
    raw = _MORE_TAIL.sub("", raw or "")
    return [s for s in (p.strip() for p in raw.split(", ")) if s]


def _more_suggestions(raw: str) -> int:
    m = _MORE_COUNT.search(raw or "")
    return int(m.group(1)) if m else 0


def _damerau(a: str, b: str) -> int:
    """Optimal string alignment distance (an adjacent transposition counts as one edit)."""
    la, lb = len(a), len(b)
    if abs(la - lb) > 3:
        return 4
    prev2: list[int] = []
    prev = list(range(lb + 1))
    for i in range(1, la + 1):
        cur = [i] + [0] * lb
        for j in range(1, lb + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[lb]


def _is_transposition(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def _is_us_spelling(word: str, suggestions: list[str]) -> bool:
    """True when a suggestion is the British form of the (American) flagged word."""
    low = word.lower()
    for s in suggestions[:2]:
        sl = s.lower()
        if sl == low or abs(len(sl) - len(low)) > 3 or sl[:1] != low[:1]:
            continue
        for pattern, parts in _US_UK:
            for m in pattern.finditer(low):
                replaced = parts[0] if len(parts) == 1 else m.group(1).join(parts)
                if low[: m.start()] + replaced + low[m.end() :] == sl:
                    return True
    return False


def _welsh_score(word: str) -> int:
    """How Welsh a word looks (0: not at all); Welsh has no k, q, v, x or z."""
    low = word.lower()
    if not low.isalpha() or any(ch in "kqvxz" for ch in low):
        return 0
    score = 2 if any(ch in WELSH_LETTERS for ch in word) else 0
    return score + sum(1 for pattern in WELSH_FEATURES if pattern.search(low))


def _has_odd_script(text: str) -> bool:
    """Letters that OCR or font mapping slipped into a word: other scripts, or Greek mixed with Latin."""
    latin = any("a" <= ch.lower() <= "z" for ch in text)
    for ch in text:
        if ch == "ı" or (latin and "\u0370" <= ch <= "\u04ff"):
            return True
        if ord(ch) < 0x250 or ch in WELSH_LETTERS or ch in _SAFE_SYMBOLS:
            continue
        category = unicodedata.category(ch)
        letter_or_symbol = category[0] == "L" or category in ("Co", "Cn", "So")
        if letter_or_symbol and not unicodedata.name(ch, "").startswith(("LATIN", "GREEK")):
            return True
    return False


def _hyphenable(spaced: str) -> bool:
    """Two-part compounds that British English normally hyphenates (well-being, climate-friendly)."""
    parts = spaced.lower().split()
    if len(parts) != 2:
        return False
    return parts[0] in _HYPHEN_PREFIXES or parts[1].endswith(_HYPHEN_SECOND_ENDINGS)


def _squash(text: str) -> str:
    return _SPACE_OR_HYPHEN.sub("", text.lower())


def _sentence_start(before: str) -> bool:
    b = before.rstrip().rstrip("*_").rstrip()
    return b in ("", "...") or b.endswith(tuple(".!?:|•-#>(\"“'‘–"))


def _foreign_share(text: str) -> tuple[str, float, int]:
    """(language, share of foreign function words, number of function words) in a piece of text."""
    words = [w.lower() for w in _WORD.findall(text)]
    english = sum(1 for w in words if w in ENGLISH_FUNCTION_WORDS)
    best_lang, best = "en", 0
    for lang, vocab in FOREIGN_FUNCTION_WORDS.items():
        n = sum(1 for w in words if w in vocab)
        if n > best:
            best_lang, best = lang, n
    total = english + best
    return best_lang, (best / total if total else 0.0), total


@lru_cache(maxsize=256)
def _spoken_markers(text: str) -> tuple[int, int]:
    """(pause marks "(.)", filler words) in a page: evidence of a spoken-language transcript."""
    return text.count("(.)"), len(_FILLER.findall(text))


@lru_cache(maxsize=256)
def _lower(text: str) -> str:
    return text.lower()


def _completion(text: str, low: str) -> str:
    """A word of ``text`` at least two letters longer than ``low`` that starts or ends with it."""
    start = text.find(low)
    while start >= 0:
        a = start
        while a > 0 and text[a - 1].isalpha():
            a -= 1
        b = start + len(low)
        while b < len(text) and text[b].isalpha():
            b += 1
        if b - a >= len(low) + 2 and (a == start or b == start + len(low)):
            return text[a:b]
        start = text.find(low, start + 1)
    return ""


@dataclass
class _View:
    """One issue as the rules see it, with lazily computed features."""

    issue: FlagText
    page: str
    hints: dict
    before: str
    match: str
    after: str
    suggestions: list[str]
    more: int
    rule: str
    kind: str
    _cache: dict = field(default_factory=dict)

    @property
    def word(self) -> str:
        return self.match.strip()

    @property
    def first(self) -> str:
        return self.suggestions[0] if self.suggestions else ""

    @property
    def around(self) -> str:
        return self.before[-70:] + " " + self.match + " " + self.after[:70]

    def fhint(self, name: str) -> float:
        try:
            return float(self.hints.get(name, 0) or 0)
        except (TypeError, ValueError):
            return 0.0

    def hint(self, name: str) -> int:
        try:
            return int(self.hints.get(name, 0) or 0)
        except (TypeError, ValueError):
            return 0

    @property
    def in_table(self) -> bool:
        return "|" in self.before[-60:] or "|" in self.after[:60]

    @property
    def cell_edge(self) -> bool:
        """The match starts or ends at a table cell boundary or the edge of the context."""
        return bool(_CELL_EDGE_AFTER.match(self.after) or _CELL_EDGE_BEFORE.search(self.before))

    @property
    def split_cells(self) -> int:
        """How often running text is cut by table bars in the context ("com | pletely")."""
        return len(_SPLIT_CELL.findall(self.issue.context))

    @property
    def transcript(self) -> bool:
        """The page records spoken language: pause marks "(.)" and fillers (um, er)."""
        if "transcript" not in self._cache:
            pauses, fillers = _spoken_markers(self.page or self.issue.context)
            local = len(_PAUSE.findall(self.around)) + len(_FILLER.findall(self.around))
            self._cache["transcript"] = pauses >= 2 or fillers >= 3 or local >= 2
        return self._cache["transcript"]

    @property
    def math(self) -> bool:
        window = self.before[-25:] + self.match + self.after[:25]
        if "](" in window or "http" in window or "www." in window:
            return False
        return bool(_MATH.search(_HTML_TAG.sub(" ", window)))

    @property
    def local_language(self) -> tuple[str, float, int]:
        if "lang" not in self._cache:
            self._cache["lang"] = _foreign_share(self.before[-90:] + " " + self.after[:90])
        return self._cache["lang"]

    @property
    def foreign_context(self) -> bool:
        """The words around the match are mostly another language's function words."""
        lang, share, total = self.local_language
        return lang != "en" and total >= 3 and share >= 0.6

    @property
    def quoted_name(self) -> bool:
        """The flag is the text of a Markdown link or the name of a function.

        A title, name or identifier quoted from elsewhere ("[Encyclopedia](https:", "capitalize()")
        keeps its own spelling.
        """
        if _CALL_PARENS.match(self.after):
            return True
        opening = self.before.rfind("[")
        return opening >= 0 and "]" not in self.before[opening:] and bool(_LINK_TEXT_END.match(self.after))

    @property
    def foreign_document(self) -> bool:
        return str(self.hints.get("doc_lang", "en")) != "en"

    def page_completion(self, low: str) -> str:
        if len(low) < 3 or not self.page:
            return ""
        key = ("completion", low)
        if key not in self._cache:
            self._cache[key] = _completion(_lower(self.page), low)
        return self._cache[key]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def _q(text: str, limit: int = 40) -> str:
    """A flagged word or suggestion quoted for a reason: one line, short, no sentence breaks."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return "'" + _SENTENCE_BREAK.sub("", text) + "'"


def _r(category: Category, confidence: int, reason: str) -> Result:
    """A result with a one-sentence reason that starts with a capital letter and ends with a full stop."""
    reason = " ".join(reason.split()).strip().rstrip(".")
    reason = _SENTENCE_BREAK.sub("", reason)
    if reason.startswith("'"):
        reason = "The flagged text " + reason
    return category, max(0, min(100, int(confidence))), reason[0].upper() + reason[1:] + "."


PE = Category.PARSING_ERROR
SE = Category.SPELLING_ERROR
AG = Category.ABSOLUTE_GRAMMATICAL_ERROR
PG = Category.POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR
SP = Category.STYLISTIC_PREFERENCE
FP = Category.FALSE_POSITIVE

# Default per LanguageTool issue type when no rule family decides.
TYPE_DEFAULT: dict[str, Result] = {
    "style": (SP, 50, "LanguageTool flags a matter of style rather than an error"),
    "grammar": (FP, 50, "the grammar rule does not clearly apply to this text"),
    "misspelling": (FP, 62, "the flagged form looks acceptable in context"),
    "typographical": (FP, 52, "the typographical flag looks acceptable in context"),
    "uncategorized": (FP, 55, "the flag does not point to a clear error in context"),
    "duplication": (FP, 45, "the repetition looks deliberate in context"),
    "locale-violation": (FP, 45, "the flagged form is acceptable in British English here"),
    "whitespace": (PE, 55, "odd spacing in converted text usually comes from PDF conversion"),
}


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def _artefact(v: _View) -> Result | None:
    """Characters and layouts that only PDF-to-Markdown conversion produces, whatever the rule."""
    m = v.match
    if any(ch in LIGATURES for ch in m) or MOJIBAKE.search(m):
        return _r(PE, 90, "the flagged text contains ligature or mojibake characters left by PDF conversion")
    if _has_odd_script(m):
        return _r(
            PE, 85, "the flagged text contains stray symbols from another script, a conversion artefact"
        )
    if _BROKEN_HYPHEN.search(m):
        return _r(
            PE, 92, "a hyphenated word has been broken by a stray space, as PDF conversion does at line ends"
        )
    if (m[-1:].isalpha() and _HYPHEN_OPENS_AFTER.match(v.after)) or (
        m[:1].isalpha() and _HYPHEN_CLOSES_BEFORE.search(v.before)
    ):
        return _r(
            PE, 80, "the word is half of a hyphenated compound broken by a stray space during conversion"
        )
    if "\u00ad" in m or "\u200b" in m:
        return _r(
            PE, 85, "an invisible soft hyphen or zero-width character from PDF conversion splits the word"
        )
    if _MARKUP.search(m):
        return _r(PE, 70, "the flagged text contains stray Markdown or HTML markup from conversion")
    return None


# ---- spelling ---------------------------------------------------------------------------------


def _fragment(v: _View, word: str) -> Result | None:
    """A piece of a word cut off by a table cell, column or line boundary during conversion."""
    if not word.isalpha() or len(word) > 16:
        return None
    low = word.lower()
    freq = v.hint("freq")
    if v.hint("join_freq") >= 2:
        return _r(PE, 92, "the flagged text is a fragment of a word split apart by PDF conversion")
    for s in v.suggestions[:3]:
        sl = s.lower()
        if " " in sl or len(sl) <= len(low):
            glued = len(sl) < len(low) <= len(sl) + 2 and len(sl) >= 3 and low.endswith(sl)
            if glued and (v.in_table or v.split_cells):
                return _r(PE, 70, f"stray letters have been glued to {_q(s)} during PDF conversion")
            continue
        if sl.endswith(low) and len(low) >= 4 and freq <= 1 and not _JOINING_MARK_AT_END.search(v.before):
            return _r(PE, 78, f"{_q(word)} is {_q(s)} with its first letters cut off by PDF conversion")
        rest = sl[len(low) :]
        if (
            sl.startswith(low)
            and len(low) >= 3
            and rest not in ("s", "es", "'s", "d", "ed", "n")
            and v.cell_edge
        ):
            return _r(
                PE, 60, f"{_q(word)} is {_q(s)} cut short at a table or line boundary during conversion"
            )
    # Welsh or other foreign words are whole words, not fragments, even when a longer form is nearby.
    if _welsh_score(word) >= 2 or v.foreign_context:
        return None
    caseless = word.islower() or word.isupper()
    if v.split_cells >= 2 and v.cell_edge and caseless and freq <= 2:
        return _r(
            PE, 70, "running text has been chopped into table cells by PDF conversion, splitting this word"
        )
    if caseless and len(word) >= 4 and freq <= 1 and (v.in_table or v.split_cells):
        completion = v.page_completion(low)
        if completion:
            return _r(PE, 55, f"{_q(word)} is part of {_q(completion)}, split apart by PDF conversion")
    if v.in_table and freq <= 1:
        heading = _CAPITALS_AT_END.search(v.before) or _CAPITALS_AT_START.match(v.after)
        if word.isupper() and len(word) >= 3 and heading:
            return _r(PE, 75, "a capitalised heading has been split across table cells by PDF conversion")
        completion = v.page_completion(low)
        if completion:
            return _r(
                PE, 65, f"{_q(word)} is part of {_q(completion)}, split across table cells by conversion"
            )
    return None


_GLUED_PREFIXES = (
    "non",
    "pre",
    "post",
    "mid",
    "anti",
    "semi",
    "multi",
    "self",
    "well",
    "pseudo",
    "cross",
    "counter",
    "sub",
    "inter",
)


def _glued_prefix(v: _View, low: str) -> str:
    """'nonassessed' -> 'non-assessed' when the part after a common prefix is a word of the page."""
    if not low.isalpha():
        return ""
    for prefix in _GLUED_PREFIXES:
        rest = low[len(prefix) :]
        if (
            low.startswith(prefix)
            and len(rest) >= 4
            and v.page
            and re.search(r"(?<![^\W\d_])" + re.escape(rest) + r"(?![^\W\d_])", _lower(v.page))
        ):
            return prefix + "-" + rest
    return ""


def _spelling(v: _View) -> Result:
    """MORFOLOGIK/Hunspell: the word is not in LanguageTool's British English dictionary."""
    word = v.word
    low = word.lower()
    sugg = v.suggestions
    freq = v.hint("freq")
    if v.math and not v.transcript:
        return _r(FP, 80, "the flagged text is part of mathematical notation, not prose")
    res = _fragment(v, word)
    if res:
        return res
    if " " in word and any(_squash(s) == _squash(word) for s in sugg):
        return _r(PE, 50, "a single word has been split by a stray space, as happens in PDF conversion")
    if _is_us_spelling(word, sugg):
        return _us_spelling(v, "spelling")
    joined = [s for s in sugg[:3] if _squash(s) == low.replace("-", "") and s.lower() != low]
    if joined and (word.islower() or "-" in word):
        hyphenated = [s for s in joined if "-" in s]
        if hyphenated:
            return _r(
                PE, 75, f"the hyphen of {_q(hyphenated[0])} has been lost, as happens in PDF conversion"
            )
        if _hyphenable(joined[0]):
            compound = joined[0].replace(" ", "-")
            return _r(
                PE, 80, f"{_q(word)} is the compound {_q(compound)} whose hyphen was lost in conversion"
            )
        return _r(FP, 62, f"{_q(word)} is an accepted closed compound of {_q(joined[0])}")
    if v.foreign_context:
        return _r(FP, 70, f"{_q(word)} is part of a passage in another language, where it is correct")
    if v.fhint("lang_zipf") > 0 and v.fhint("zipf") == 0:
        language = LANGUAGE_NAMES.get(str(v.hints.get("doc_lang")), "another language")
        return _r(FP, 80, f"{_q(word)} is a common word of {language}, the language this document teaches")
    glued = _glued_prefix(v, low)
    if glued:
        return _r(PE, 72, f"{_q(word)} is {_q(glued)} with its hyphen lost, as happens in PDF conversion")
    welsh = _welsh_score(word)
    welsh_nearby = v.hints.get("doc_lang") == "cy" or v.local_language[0] == "cy"
    typo = _typo(v)
    if typo and welsh < 2:
        return _r(SE, 40, f"{_q(word)} is one typing slip away from {_q(typo)}")
    if not word.isupper() and (welsh >= 2 or (welsh == 1 and welsh_nearby)):
        return _r(FP, 60, f"{_q(word)} looks like a correctly spelled Welsh word")
    if word[:1].isupper() and freq >= 2:
        return _r(FP, 88, f"{_q(word)} is a proper noun or specialist term used repeatedly in the document")
    if freq >= 3:
        return _r(
            FP, 85, f"{_q(word)} is used consistently throughout the document, so it is a deliberate term"
        )
    if v.in_table:
        if _unknown_lower_word(v, word):
            return _r(
                PE,
                50,
                f"{_q(word)} is not an English word but most likely letters mangled by table conversion",
            )
        return _r(
            FP, 45, f"{_q(word)} is probably a correct term, although table layouts can also split words"
        )
    return _r(FP, 70, f"{_q(word)} is most likely a correct specialist, foreign or proper-noun term")


def _unknown_lower_word(v: _View, word: str) -> bool:
    """A lower-case word of five letters or more that wordfreq does not know in English.

    In a table cell such a word is more often letters that conversion cut, merged or misread
    than a term: terms and names are capitalised, camel-cased or hyphenated.
    """
    return word.isalpha() and word.islower() and len(word) >= 5 and "zipf" in v.hints and v.fhint("zipf") == 0


def _typo(v: _View) -> str:
    """The word that the flagged word is one typing slip away from ("" if none).

    A slip is one inserted, deleted, replaced or swapped letter (two for long words).  The
    suggestion must be a common English word much more common than the flagged word, or the only
    correction LanguageTool offers; the flagged word must stand on its own (not glued to code or
    to other letters) and be rare in the document (a term used again and again is deliberate).
    """
    word, sugg = v.word, v.suggestions
    if not sugg or not word.isalpha() or word.isupper() or v.transcript or v.foreign_document:
        return ""
    if v.hint("alien"):
        return ""  # among words that are not English: a phrase of another language
    first = sugg[0]
    if not first.replace("'", "").isalpha():
        return ""
    low, first_low = word.lower(), first.lower()
    swapped = _is_transposition(low, first_low)
    distance = _damerau(low, first_low)
    if distance > (2 if len(word) >= 8 else 1):
        return ""
    z_word, z_sugg = v.fhint("zipf"), v.fhint("sugg_zipf")
    common = z_sugg >= (3.5 if len(word) < 7 else 3.0) and z_sugg - z_word >= 2.0
    only = len(sugg) == 1 and not v.more and word.islower() and len(word) >= 5 and distance == 1
    # two swapped letters of the one correction offered: a slip, even in a name used throughout
    only_swap = swapped and len(sugg) == 1 and not v.more and len(word) >= 4
    if only_swap and not _GLUED_BEFORE.search(v.before):
        return first
    if not (common or only):
        return ""
    if (len(word) <= 3 or v.in_table) and not swapped:
        return ""  # short pieces and table cells are more often cut words than typing slips
    if word[:1].isupper() and not swapped and len(word) < 6 and not _sentence_start(v.before):
        return ""  # a short capitalised word mid-sentence is more often a name than a slip
    if _GLUED_BEFORE.search(v.before) or _GLUED_AFTER.match(v.after):
        return ""  # glued to other text: a piece of a longer token, not a word on its own
    if v.hint("freq") > (3 if swapped else 1 if word[:1].isupper() else 2):
        return ""
    return first


# ---- compounds and hyphens --------------------------------------------------------------------


def _compound_target(v: _View) -> str:
    """The suggestion that differs from the flagged text only by spaces or hyphens ("" if none)."""
    word = v.word
    for s in v.suggestions[:3]:
        if _squash(s) == _squash(word) and s.lower() != word.lower():
            return s
    return ""


def _modifies_next_word(after: str) -> bool:
    """The words flagged stand before a content word, so they modify it ("gender neutral language").

    Only a compound that modifies the next word is hyphenated in British English; one followed
    by punctuation or a function word is a noun ("towards net zero.") and is written open.
    """
    nxt = _NEXT_WORD.match(after)
    return bool(nxt) and nxt.group(1).lower() not in _LINK_WORDS


def _compound(v: _View) -> Result | None:
    word = v.word
    target = _compound_target(v)
    if not target:
        return None
    words = word.split()
    if len(words) > 1 and all(w[:1].isupper() for w in words):
        return _r(FP, 50, f"{_q(word)} is a proper name, which keeps its own spacing")
    if " " in word and "-" in target:
        if _hyphenable(word) or v.hint("sugg_freq") >= 1:
            return _r(PE, 82, f"the hyphen of {_q(target)} has most likely been lost in PDF conversion")
        if not word[:1].isdigit() and not _modifies_next_word(v.after):
            return _r(FP, 50, f"{_q(word)} is an open compound used as a noun, which needs no hyphen")
        return _r(PE, 40, f"the hyphen of {_q(target)} may have been lost in PDF conversion")
    if " " in word:
        return _r(
            SE,
            35,
            f"{_q(word)} is normally written as one word, {_q(target)}",
        )
    if "-" in word:
        return _r(FP, 55, f"the hyphenated form {_q(word)} is acceptable in British English")
    return _r(FP, 55, f"{_q(word)} is an accepted closed form, so splitting it is unnecessary")


# ---- repetition -------------------------------------------------------------------------------


def _repetition(v: _View) -> Result | None:
    m = v.match
    parts = m.split()
    if v.transcript:
        return _r(FP, 75, "the repetition faithfully records spoken language in a transcript")
    verb_pair = (
        len(parts) == 2
        and parts[1].lower().startswith(parts[0].lower()[:3])
        and parts[0].lower() != parts[1].lower()
    )
    if v.rule.startswith(("REPEATED_VERBS", "ADVERB_VERB_ADVERB")) or verb_pair:
        if _WIDE_GAP.search(m):
            return _r(FP, 50, "the two forms are separate entries laid out in columns of a word list")
        if "(to)" in v.before[-20:] or v.foreign_document or v.in_table:
            return _r(
                PE, 88, "two entries of a word list have run together because conversion lost the separator"
            )
        return _r(AG, 50, "two forms of the same verb are written side by side, so one of them is redundant")
    if len(parts) >= 2 and all(_MARK_CODE.match(p) for p in parts):
        return _r(FP, 72, "repeated codes such as mark-scheme labels are not a grammatical repetition")
    if v.foreign_context or (v.foreign_document and v.in_table):
        return _r(FP, 45, "the repeated word belongs to a word list or another language where it is intended")
    if len(parts) >= 2 and parts[0] != parts[1] and parts[0].lower() == parts[1].lower():
        return _r(
            PE,
            45,
            "the word repeated with different capitalisation comes from a heading merged in conversion",
        )
    if v.in_table or _DOUBLE_SPACE.search(m):
        return _r(PE, 50, "the repetition comes from table cells or lines merged during PDF conversion")
    if parts and parts[0].lower() in ENGLISH_FUNCTION_WORDS | {"a", "an", "the", "to", "in", "is"}:
        return _r(AG, 70, f"the word {_q(parts[0])} is accidentally repeated")
    return _r(FP, 62, "the repeated content word looks deliberate, for example for emphasis or in a list")


# ---- punctuation, spacing, quotes ---------------------------------------------------------------


def _spacing(v: _View) -> Result | None:
    if v.word in ("(", "[") and _WORD_AFTER.match(v.after) and v.before[-1:].isalnum():
        return _r(PE, 65, "the space before the bracket was lost when the PDF was converted")
    if v.math:
        return _r(FP, 50, "the spacing is normal in mathematical or numeric notation")
    if v.foreign_context or (v.foreign_document and "loose punctuation" in v.issue.message.lower()):
        return _r(FP, 80, "the punctuation follows the conventions of the other language used here")
    if v.transcript:
        return _r(FP, 55, "the punctuation reflects the conventions of a spoken-language transcript")
    return _r(PE, 60, "misplaced spaces or punctuation marks typically come from PDF-to-Markdown conversion")


def _quotes(v: _View) -> Result | None:
    if _CODE_CALL.search(v.before[-40:]):
        return _r(
            FP, 55, "the quotation mark delimits a string in program code, which LanguageTool cannot pair"
        )
    prev = v.before[-1:]
    if v.match in ("'", "’") and v.after[:1].isalpha() and (prev.isspace() or prev == ""):
        tail = _LETTERS.match(v.after)
        if tail and len(tail.group(0)) <= 4 and tail.group(0).islower():
            return _r(FP, 45, "the apostrophe marks an elided word rather than an unclosed quotation")
    return _r(PE, 65, "the matching quotation mark was most likely lost or moved when the PDF was converted")


def _comma(v: _View) -> Result | None:
    if v.transcript:
        return _r(FP, 45, "spoken-language transcripts do not follow written punctuation conventions")
    if v.foreign_context:
        return _r(FP, 55, "the punctuation belongs to a passage in another language")
    if v.rule.startswith("COMMA_COMPOUND_SENTENCE"):
        return _r(
            PG,
            45,
            "a comma before the conjunction joining two independent clauses is advisable but debatable",
        )
    return None


# ---- grammar ----------------------------------------------------------------------------------


def _grammar(v: _View) -> Result | None:
    if v.transcript:
        return _r(FP, 80, "the wording faithfully records spoken language in a transcript")
    if v.foreign_context or (v.foreign_document and v.in_table):
        return _r(FP, 45, "the flagged words belong to another language, which the English rule cannot judge")
    if v.in_table and not v.after.split("|")[0].strip():
        return _r(PE, 45, "the sentence breaks off at a table cell boundary created by PDF conversion")
    if _USUAL_COLLOCATION.search(v.issue.message):
        return _r(
            SP, 50, "the preposition used is less usual but not wrong, so the change is a matter of style"
        )
    if _AGREEMENT.search(v.rule):
        return _r(AG, 52, "the subject and verb or article and noun do not agree")
    if v.math:
        return None
    return _r(
        AG, 35, "LanguageTool's grammar rule applies to running prose here, so the wording is likely wrong"
    )


def _a_vs_an(v: _View) -> Result | None:
    if v.foreign_context or v.foreign_document:
        return _r(FP, 90, "'a' here is a word of another language, not the English article")
    if v.transcript:
        return _r(FP, 60, "the article records hesitant spoken language in a transcript")
    nxt = _NEXT_WORD_PAST_STARS.match(v.after)
    if v.math or not nxt or len(nxt.group(1)) == 1:
        return _r(FP, 50, "the article is followed by notation or a label, not a word it must agree with")
    return _r(AG, 45, "the indefinite article does not match the sound of the following word")


# ---- case, locale, variants, diacritics, style --------------------------------------------------


def _case(v: _View) -> Result | None:
    return _r(
        FP, 80, "the capitalisation is deliberate in context (a label, code, heading or another language)"
    )


def _us_spelling(v: _View, what: str) -> Result:
    """An American spelling is an error in British prose, not in a title or name quoted from elsewhere."""
    if v.quoted_name:
        return _r(
            FP, 60, f"{_q(v.word)} is part of a title or name quoted from elsewhere, which keeps its spelling"
        )
    return _r(SE, 60, f"{_q(v.word)} is the American {what}; British English uses {_q(v.first)}")


def _locale(v: _View) -> Result | None:
    if _is_us_spelling(v.match, v.suggestions):
        return _us_spelling(v, "spelling")
    if v.transcript or v.foreign_context or v.foreign_document or v.in_table or not v.first:
        return _r(FP, 60, f"{_q(v.match)} is acceptable in British English in this context")
    return _r(SE, 40, f"{_q(v.match)} is the American word; British English uses {_q(v.first)}")


def _name_form_target(v: _View) -> str:
    """The suggestion that writes the flagged word with other capitals or an apostrophe ("" if none)."""
    word = v.word
    for s in v.suggestions[:3]:
        if s == word or not s[:1].isalpha():
            continue
        if s.lower() == word.lower():
            return s
        if _APOSTROPHE.sub("", s) == word and word[:1].isupper() and not _sentence_start(v.before):
            return s
    return ""


def _name_form(v: _View) -> Result | None:
    """Brand names, titles and contractions written with the wrong capitals or no apostrophe."""
    target = _name_form_target(v)
    if v.transcript or v.foreign_context or v.foreign_document or v.math or "http" in v.around:
        return None
    if len(v.word) < 4 and "'" not in target:
        return None  # two or three letters are as often a code, symbol or foreign word as a name
    return _r(SE, 55, f"{_q(v.word)} is normally written {_q(target)}")


def _coherency(v: _View) -> Result | None:
    if _is_us_spelling(v.match, v.suggestions):
        return _us_spelling(v, "variant")
    res = _compound(v)
    if res:
        return res
    return _r(FP, 50, f"{_q(v.match)} is a standard British variant, so mixing variants is not an error here")


def _diacritic(v: _View) -> Result | None:
    if v.match[:1].isupper() and (len(v.match.split()) > 1 or not _sentence_start(v.before)):
        return _r(FP, 72, f"{_q(v.match)} is a name commonly written without its original accents in English")
    return _r(FP, 60, f"{_q(v.match)} is an accepted English spelling without the accent of {_q(v.first)}")


def _apostrophe(v: _View) -> Result | None:
    if _DECADE.fullmatch(v.word) and v.first == _APOSTROPHE.sub("", v.word):
        return _r(
            SP,
            55,
            f"{_q(v.first)} without the apostrophe is the usual form, but this is a matter of house style",
        )
    if v.transcript or v.foreign_context or v.math or not _APOSTROPHE.search(v.first) or "'" in v.word:
        return None
    return _r(AG, 40, f"{_q(v.word)} needs an apostrophe to show possession, as in {_q(v.first)}")


def _phrase(v: _View) -> Result | None:
    """A multi-word expression that LanguageTool's phrase list says is misused ("with regards to")."""
    if v.transcript or v.foreign_context or v.foreign_document or v.math or not v.first or v.hint("alien"):
        return None
    if not v.word[:1].islower() or _squash(v.first) == _squash(v.word):
        return None  # names keep their own spelling; spacing and hyphens are the compounds' business
    return _r(AG, 45, f"{_q(v.word)} is a common misuse; the standard form is {_q(v.first)}")


def _style(v: _View) -> Result | None:
    if v.transcript:
        return _r(FP, 82, "informal wording is expected in a transcript of spoken language")
    if v.foreign_context:
        return _r(FP, 60, "the flagged words belong to a passage in another language")
    dropped = _dropped_words(v.word, v.first) if v.first else []
    if dropped and any(w not in _LINK_WORDS or w in _QUANTIFIERS for w in dropped):
        return _r(
            FP, 50, f"{_q(' '.join(dropped))} carries meaning here, so the shorter wording is not equivalent"
        )
    return _r(SP, 50, "LanguageTool suggests a more concise or formal wording, which is a matter of style")


def _dropped_words(flagged: str, suggestion: str) -> list[str]:
    """The words a suggestion leaves out when it only deletes words of the flagged text ([] otherwise)."""
    left = flagged.lower().split()
    for w in suggestion.lower().split():
        if w not in left:
            return []
        left.remove(w)
    return left


def _fallback(v: _View) -> Result:
    if v.transcript:
        return _r(FP, 85, "the wording faithfully records spoken language in a transcript")
    if v.foreign_context:
        return _r(FP, 85, "the flagged words belong to a passage in another language")
    return _r(*TYPE_DEFAULT.get(v.kind, (FP, 45, "the flag does not point to a clear error")))


# Rule families, tried in order; a handler may return None to let later families decide.
_FAMILIES: tuple[tuple[Callable[[_View], bool], Callable[[_View], Result | None]], ...] = (
    (lambda v: _spelling_rule(v.rule), _spelling),
    (lambda v: v.rule == "EN_WORD_COHERENCY" or v.kind == "inconsistency", _coherency),
    (lambda v: v.kind == "locale-violation", _locale),
    (lambda v: "DIACRITIC" in v.rule, _diacritic),
    (lambda v: bool(_compound_target(v)), _compound),
    (lambda v: "REPEAT" in v.rule or "REPETITION" in v.rule or "DUPLICATE" in v.rule, _repetition),
    (lambda v: v.kind == "duplication", _repetition),
    (lambda v: "UNPAIRED" in v.rule or "QUOTE" in v.rule, _quotes),
    (lambda v: v.kind == "whitespace" or _SPACING_RULE.search(v.rule) is not None, _spacing),
    (lambda v: "COMMA" in v.rule, _comma),
    (lambda v: v.rule in ("EN_A_VS_AN", "A_VS_AN"), _a_vs_an),
    (lambda v: "CASE" in v.rule or "CAPITALI" in v.rule or "UPPERCASE" in v.rule, _case),
    (lambda v: bool(_name_form_target(v)), _name_form),
    (lambda v: "APOSTROPHE" in v.rule and v.kind == "typographical", _apostrophe),
    (lambda v: v.kind == "misspelling" and " " in v.word.strip(), _phrase),
    (lambda v: v.kind == "style", _style),
    (lambda v: v.kind == "grammar", _grammar),
)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def classify(issue: FlagText, page_text: str | None, hints: dict) -> tuple[Category, int, str]:
    """Deterministic heuristic triage of one LanguageTool flag: (category, confidence, reason)."""
    before, match, after = _split_context(issue.context or "", issue.issue or "")
    view = _View(
        issue=issue,
        page=page_text or "",
        hints=hints if isinstance(hints, dict) else {},
        before=before,
        match=match or issue.issue or "",
        after=after,
        suggestions=_suggestion_list(issue.suggestions),
        more=_more_suggestions(issue.suggestions),
        rule=(issue.rule_id or "").upper(),
        kind=(issue.type or "").lower(),
    )
    res = _artefact(view)
    if res:
        return res
    for applies, handler in _FAMILIES:
        if applies(view):
            res = handler(view)
            if res:
                return res
    return _fallback(view)
