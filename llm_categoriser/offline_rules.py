"""Offline heuristic categoriser: triage a LanguageTool flag without a model or a network.

The categoriser looks at what LanguageTool says (rule id, issue type, message, suggestions) and at
what the document shows: the highlighted context, the page's Markdown, how often the flagged word
and its suggested replacement occur elsewhere in the whole document, characters and layouts that
only PDF-to-Markdown conversion produces, Welsh and other foreign-language text, proper nouns,
maths notation and US spellings.

Two entry points are called by the pipeline:

* ``document_hints`` runs at planning time, once per issue, with the whole document; it returns a
  handful of JSON-serialisable numbers.  The expensive part (a token index of the document) is built
  once per document and cached, so hints for every issue of a corpus cost well under a second.
* ``classify`` is deterministic and returns ``(category, confidence, reason)``.  Confidence is the
  expected agreement of the chosen branch with a careful human or model reviewer, so that higher
  confidence means more often right.

Only the standard library is used.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from .categories import Category
from .models import Issue

Result = tuple[Category, int, str]

# --------------------------------------------------------------------------------------------
# Word lists (function words only: general language knowledge, not corpus vocabulary)
# --------------------------------------------------------------------------------------------

ENGLISH_FUNCTION_WORDS = frozenset(
    """the and of to in is that for it as with was on be by this are or an at from which not have
    has but they their can will should what how when who we you he she his her there were been would
    could about into these those also more than other such them its if may must one all some any each
    do does did between because through after before while where why our your my me us him then so
    very only just being had most many much both own same few out up down over under again further
    once here whether within without during against among upon""".split()
)

FOREIGN_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "fr": frozenset(
        """le la les des du un une et est dans pour que qui pas ne sur avec au aux ce cette ces je tu
        il elle nous vous ils elles mon ma mes ton ta tes son sa ses leur leurs être avoir fait très
        mais où à c'est j'ai suis sont ai avons avez ont était aussi j'aime qu'est-ce quel quelle
        beaucoup bien trop peu chez toujours jamais parce comme faire aller""".split()
    ),
    "de": frozenset(
        """der die das den dem des ein eine einen einem einer und ist nicht ich du er sie es wir ihr mit
        auf für von zu im auch aber oder wie wo mein meine meinen dein deine sein seine haben habe hat
        sind bin bist gern sehr kann ich's man noch nach bei zum zur über weil dass wenn immer schon
        gibt viel mehr machen gehen""".split()
    ),
    "es": frozenset(
        """el los las del y es una que por para con se su sus mi mis tu te lo al como más pero muy estoy
        está están son soy hay también yo nosotros ella ellos es un unos unas este esta estos estas ese
        esa eso porque cuando donde dónde qué cómo tengo tiene me gusta mucho fue era ser estar hacer
        voy ir""".split()
    ),
    "cy": frozenset(
        """y yr yn ac i o ar gyda mae ein eich ei eu am wedi bod hefyd neu fel ond sy sydd dros gan ble
        beth pam ydy oes rydw dw fy ti chi nhw hi fe fo dyma hyn hwn hon iawn gwaith ysgol cymraeg
        cymru cymreig a'r i'r o'r yw roedd bydd gallu dylai rhaid drwy trwy ymhlith rhwng ni nid dim
        gan""".split()
    ),
}
# Words that are common in English too must not count as evidence of another language.
_AMBIGUOUS = frozenset("a in an is was die son me no so see more fast also will was hat tu te".split())
for _lang, _words in list(FOREIGN_FUNCTION_WORDS.items()):
    FOREIGN_FUNCTION_WORDS[_lang] = frozenset(w for w in _words if w not in ENGLISH_FUNCTION_WORDS and w not in _AMBIGUOUS)

WELSH_LETTERS = set("ŵŷâêîôûŴŶÂÊÎÔÛ")
WELSH_PATTERNS = re.compile(
    r"(?:^(?:ll|rh|dd|ff|ngh|mh|nh|chw|gw|cw|tw|dw|bw|wr|wy))|dd|ll|ff|wy|yw|aw|ae|oe|au|[bcdfghlmnprst]w[bcdfghlmnprst]|ch$|dd$|ll$|wch|ydd|ion$|iau$",
)

LIGATURES = set("ﬀﬁﬂﬃﬄﬅﬆ")
MOJIBAKE = re.compile(r"Ã.|â€|Â[^\w]|Ã|ï¿½|\ufffd|&#\d+;|&[a-z]+;|\\u[0-9a-f]{4}")
MARKUP = re.compile(r"<[/a-zA-Z][^>]*>|\]\(|\[\^?\d+\]|_page_|\.jpe?g|\.png|\{\d+\}|^#+\s|\\\*|\*\*|__")
LATEX = re.compile(r"\\[a-zA-Z]+|\$|\^\{|_\{|\\[()\[\]]")
WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
PAGE_MARKER = re.compile(r"^\{(\d+)\}-+\s*$", re.MULTILINE)

# Type-level priors when nothing more specific is known.
TYPE_DEFAULT: dict[str, tuple[Category, int, str]] = {
    "style": (Category.STYLISTIC_PREFERENCE, 50, "LanguageTool flags a matter of style rather than an error"),
    "grammar": (Category.FALSE_POSITIVE, 45, "the grammar rule does not clearly apply to this text"),
    "misspelling": (Category.FALSE_POSITIVE, 45, "the flagged form looks acceptable in context"),
    "typographical": (Category.FALSE_POSITIVE, 45, "the typographical flag looks acceptable in context"),
    "uncategorized": (Category.FALSE_POSITIVE, 45, "the flag does not point to a clear error in context"),
    "duplication": (Category.FALSE_POSITIVE, 45, "the repetition looks deliberate in context"),
    "locale-violation": (Category.FALSE_POSITIVE, 45, "the flagged form is acceptable in British English here"),
    "whitespace": (Category.PARSING_ERROR, 55, "odd spacing in converted text usually comes from PDF conversion"),
}


# --------------------------------------------------------------------------------------------
# Document profile (built once per document) and hints
# --------------------------------------------------------------------------------------------

_SEPARATORS = tuple('.,;:!?()[]{}"“”*_|<>/\\#$=+…•')


@dataclass
class _DocProfile:
    tokens: Counter
    foreign_ratio: float
    language: str

    def count(self, word: str) -> int:
        """Occurrences of ``word`` as a token of the document (punctuation is not part of a token)."""
        return self.tokens.get(word, 0) if word else 0

    def count_any_case(self, word: str) -> int:
        forms = {word, word.lower(), word.capitalize(), word.upper()}
        return sum(self.tokens.get(f, 0) for f in forms)


_PROFILE_CACHE: dict[tuple, _DocProfile] = {}
_PROFILE_CACHE_SIZE = 512


def _doc_key(text: str) -> tuple:
    stride = max(1, len(text) // 509)
    return (len(text), text[:200], text[-200:], text[::stride])


def _profile(text: str) -> _DocProfile:
    key = _doc_key(text)
    prof = _PROFILE_CACHE.get(key)
    if prof is not None:
        return prof
    cleaned = text
    for ch in _SEPARATORS:
        if ch in cleaned:
            cleaned = cleaned.replace(ch, " ")
    tokens = Counter(cleaned.split())
    english = sum(tokens.get(w, 0) + tokens.get(w.capitalize(), 0) for w in ENGLISH_FUNCTION_WORDS)
    best_lang, best = "en", 0
    for lang, words in FOREIGN_FUNCTION_WORDS.items():
        n = sum(tokens.get(w, 0) + tokens.get(w.capitalize(), 0) for w in words)
        if n > best:
            best_lang, best = lang, n
    ratio = best / (best + english) if best + english else 0.0
    prof = _DocProfile(tokens=tokens, foreign_ratio=round(ratio, 3), language=best_lang if ratio >= 0.08 else "en")
    if len(_PROFILE_CACHE) >= _PROFILE_CACHE_SIZE:
        _PROFILE_CACHE.pop(next(iter(_PROFILE_CACHE)))
    _PROFILE_CACHE[key] = prof
    return prof


def _split_context(context: str, issue_text: str) -> tuple[str, str, str]:
    """(before, match, after) of LanguageTool's highlighted context; the match is wrapped in ``**``."""
    if issue_text:
        marker = "**" + issue_text + "**"
        i = context.find(marker)
        if i >= 0:
            return context[:i], issue_text, context[i + len(marker):]
    m = re.search(r"\*\*(.+?)\*\*", context)
    if m:
        return context[: m.start()], m.group(1), context[m.end():]
    return context, issue_text, ""


def _neighbour_fragments(before: str, after: str) -> tuple[str, str]:
    """The letters touching the match on each side, skipping spaces and table bars."""
    b = re.search(r"([^\W\d_]+)[\s|]*$", before.rstrip("."))
    a = re.match(r"^[\s|]*([^\W\d_]+)", after)
    return (b.group(1) if b else ""), (a.group(1) if a else "")


def document_hints(issue: Issue, document_text: str) -> dict[str, int | float | str | bool]:
    """Document-level evidence for one issue (a few JSON-serialisable numbers and strings)."""
    prof = _profile(document_text or "")
    word = issue.issue.strip()
    suggestions = _suggestion_list(issue.suggestions)
    first = suggestions[0] if suggestions else ""
    hints: dict[str, int | float | str | bool] = {
        "doc_lang": prof.language,
        "doc_foreign": prof.foreign_ratio,
    }
    if word and " " not in word:
        hints["freq"] = prof.count_any_case(word)
        hints["freq_exact"] = prof.count(word)
        hints["freq_lower"] = prof.count(word.lower()) if word != word.lower() else hints["freq_exact"]
    if first and " " not in first:
        hints["sugg_freq"] = prof.count_any_case(first)
    # A fragment of a word split by conversion: does it join with a neighbour into a known word?
    if word and " " not in word and word.isalpha():
        before, _m, after = _split_context(issue.context, issue.issue)
        prev, nxt = _neighbour_fragments(before, after)
        best = 0
        cands = [prev + word, word + nxt, prev + word + nxt]
        if prev and prev[-1].lower() == word[0].lower():
            cands.append(prev + word[1:])
        if nxt and nxt[0].lower() == word[-1].lower():
            cands.append(word + nxt[1:])
        for cand in cands:
            if cand != word and len(cand) >= 3:
                n = prof.count_any_case(cand)
                best = max(best, n if len(cand) >= 4 else n // 2)
        hints["join_freq"] = best
    return hints


# --------------------------------------------------------------------------------------------
# Helpers for classify
# --------------------------------------------------------------------------------------------


def _suggestion_list(raw: str) -> list[str]:
    raw = re.sub(r"\s*\(\+\d+ more\)\s*$", "", raw or "")
    return [s for s in (p.strip() for p in raw.split(", ")) if s]


def _more_suggestions(raw: str) -> int:
    m = re.search(r"\(\+(\d+) more\)", raw or "")
    return int(m.group(1)) if m else 0


def _damerau(a: str, b: str) -> int:
    """Optimal string alignment distance (adjacent transpositions count as one edit)."""
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


_US_UK = (
    (r"or(s?)$", r"our\1"), (r"or(ed|ing|ful|ite|ites|able)$", r"our\1"), (r"ter(s?)$", r"tre\1"),
    (r"ize", "ise"), (r"iza", "isa"), (r"yze", "yse"), (r"ense$", "ence"), (r"og$", "ogue"),
    (r"l(ed|ing|er|ers)$", r"ll\1"), (r"aging$", "ageing"), (r"ment$", "ement"), (r"e", "ae"),
    (r"e", "oe"), (r"ll$", "l"), (r"ll(s|ment)$", r"l\1"), (r"z", "s"), (r"o", "ou"), (r"ay", "ey"),
    (r"ered", "red"), (r"er(ness|ed)", r"r\1"), (r"ense", "ence"), (r"ck", "que"), (r"gram$", "gramme"),
)


def _is_us_spelling(word: str, suggestions: list[str]) -> bool:
    """True when a suggestion is the British form of the (American) flagged word."""
    low = word.lower()
    for s in suggestions[:2]:
        sl = s.lower()
        if sl == low or abs(len(sl) - len(low)) > 3:
            continue
        for pat, rep in _US_UK:
            for m in re.finditer(pat, low):
                cand = low[: m.start()] + m.expand(rep) + low[m.end():]
                if cand == sl:
                    return True
    return False


def _welsh_score(word: str) -> int:
    low = word.lower()
    score = 0
    if any(ch in WELSH_LETTERS for ch in word):
        score += 2
    score += len(WELSH_PATTERNS.findall(low))
    return score


def _has_odd_script(text: str) -> bool:
    """Letters that OCR or font mapping slipped into a word: other scripts, or Greek mixed with Latin."""
    latin = any("a" <= ch.lower() <= "z" for ch in text)
    for ch in text:
        if ch == "ı" or (latin and "\u0370" <= ch <= "\u04ff"):
            return True
        if ord(ch) < 0x250:
            continue
        if ch in WELSH_LETTERS or ch in "‘’“”–—…•£€°±×÷√≤≥≠≈∞πθαβγδλμσΣΩΔ·′″→←↔∴∵∠⊥∈∪∩":
            continue
        cat = unicodedata.category(ch)
        if cat.startswith("L") or cat in ("Co", "Cn", "So"):
            name = unicodedata.name(ch, "")
            if not name.startswith(("LATIN", "GREEK")):
                return True
    return False


_PAUSE = re.compile(r"\(\.\)|\(\d\)")
_FILLER = re.compile(r"\b(?:um+|erm?|uh|mm+)\b")
_MATH = re.compile(r"\$|\\[a-zA-Z]{2,}|\^|[≤≥±×÷√∑∫≠≈]|\d\s*[=+*/<>]\s*\d|(?<![\w'’])[a-zA-Z]\s*[=<>]\s*[\w(]|[\w)]\s*=\s*(?<![\w'’])[a-zA-Z\d](?![a-zA-Z])")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_MARK_CODE = re.compile(r"^(?:[A-Z]{1,2}\d|[a-z]?\d+[a-z]?|[ivx]+|[A-Z]{1,3})$")


@dataclass
class _View:
    issue: Issue
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
    def around(self) -> str:
        return self.before[-70:] + " " + self.match + " " + self.after[:70]

    @property
    def first(self) -> str:
        return self.suggestions[0] if self.suggestions else ""

    def hint(self, name: str) -> int:
        try:
            return int(self.hints.get(name, 0) or 0)
        except (TypeError, ValueError):
            return 0

    @property
    def in_table(self) -> bool:
        return "|" in self.before[-60:] or "|" in self.after[:60]

    @property
    def transcript(self) -> bool:
        if "transcript" not in self._cache:
            text = self.page or self.issue.context
            pauses = text.count("(.)")
            fillers = len(_FILLER.findall(text))
            local = len(_PAUSE.findall(self.around)) + len(_FILLER.findall(self.around))
            self._cache["transcript"] = pauses >= 2 or fillers >= 3 or local >= 2
        return self._cache["transcript"]

    @property
    def cell_edge(self) -> bool:
        """The match ends at a table cell, line or heading boundary."""
        return bool(re.match(r"^\s*(?:\||$)", self.after)) or bool(re.search(r"(?:\||^)\s*$", self.before))

    def page_completion(self, low: str) -> str:
        """A longer word on the page of which ``low`` is the start or the end."""
        if len(low) < 3 or not self.page:
            return ""
        key = ("completion", low)
        if key not in self._cache:
            found = ""
            text = self.page.lower()
            for m in re.finditer(r"[^\W\d_]*" + re.escape(low) + r"[^\W\d_]*", text):
                w = m.group(0)
                if w != low and len(w) >= len(low) + 2 and (w.startswith(low) or w.endswith(low)):
                    found = w
                    break
            self._cache[key] = found
        return self._cache[key]

    @property
    def math(self) -> bool:
        window = self.before[-25:] + self.match + self.after[:25]
        if "](" in window or "http" in window or "www." in window:
            return False
        return bool(_MATH.search(_HTML_TAG.sub(" ", window)))

    @property
    def split_cells(self) -> int:
        """How often running text is cut by table bars in the context ("com | pletely")."""
        return len(re.findall(r"[a-z]\s*\|\s*[a-z]", self.issue.context))

    @property
    def local_language(self) -> tuple[str, float, int]:
        """Language of the words around the match (function-word vote)."""
        if "lang" not in self._cache:
            self._cache["lang"] = _foreign_share(self.before[-90:] + " " + self.after[:90])
        return self._cache["lang"]

    @property
    def foreign_context(self) -> bool:
        lang, share, total = self.local_language
        return lang != "en" and total >= 3 and share >= 0.6

    @property
    def foreign_document(self) -> bool:
        return str(self.hints.get("doc_lang", "en")) != "en"


def _foreign_share(text: str) -> tuple[str, float, int]:
    """(language, share of foreign function words, number of function words) in a piece of text."""
    words = [w.lower() for w in WORD_RE.findall(text)]
    english = sum(1 for w in words if w in ENGLISH_FUNCTION_WORDS)
    best_lang, best = "en", 0
    for lang, vocab in FOREIGN_FUNCTION_WORDS.items():
        n = sum(1 for w in words if w in vocab)
        if n > best:
            best_lang, best = lang, n
    total = english + best
    return best_lang, (best / total if total else 0.0), total


def _sentence_start(before: str) -> bool:
    b = before.rstrip().rstrip("*_").rstrip()
    return b in ("", "...") or b.endswith((".", "!", "?", ":", "|", "•", "-", "#", ">", "(", '"', "“", "'", "‘", "–"))


def _squash(text: str) -> str:
    return re.sub(r"[\s\-‐‑]", "", text.lower())


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def _r(category: Category, confidence: int, reason: str) -> Result:
    reason = " ".join(reason.split()).strip().rstrip(".")
    reason = reason[0].upper() + reason[1:] + "."
    return category, max(0, min(100, int(confidence))), reason


def _artefact(v: _View) -> Result | None:
    """Characters and layouts that only PDF-to-Markdown conversion produces, whatever the rule."""
    m = v.match
    if any(ch in LIGATURES for ch in m) or MOJIBAKE.search(m):
        return _r(Category.PARSING_ERROR, 90, "the flagged text contains ligature or mojibake characters left by PDF conversion")
    if _has_odd_script(m):
        return _r(Category.PARSING_ERROR, 80, "the flagged text contains stray symbols from another script, a PDF conversion artefact")
    if re.search(r"[^\W\d_]\s+[-‐‑][^\W\d_]|[^\W\d_][-‐‑]\s+[^\W\d_]", m):
        return _r(Category.PARSING_ERROR, 85, "a hyphenated word has been broken by a stray space, as PDF conversion does at line ends")
    if m[-1:].isalpha() and re.match(r"^\s+[-‐‑][^\W\d_]", v.after) or m[:1].isalpha() and re.search(r"[^\W\d_][-‐‑]\s+$", v.before):
        return _r(Category.PARSING_ERROR, 80, "the word is half of a hyphenated compound broken by a stray space during PDF conversion")
    if "\u00ad" in m or "\u200b" in m:
        return _r(Category.PARSING_ERROR, 85, "an invisible soft hyphen or zero-width character from PDF conversion splits the word")
    if re.search(r"<[/a-zA-Z][^>]*>|\]\(|_page_|\{\d+\}|\\\*|\*\*", m):
        return _r(Category.PARSING_ERROR, 70, "the flagged text contains stray Markdown or HTML markup from conversion")
    return None


def _classify(v: _View) -> Result:
    res = _artefact(v)
    if res:
        return res
    rule = v.rule
    for predicate, handler in _FAMILIES:
        if predicate(v):
            res = handler(v)
            if res:
                return res
    return _fallback(v)


# ---- spelling ---------------------------------------------------------------------------------


def _fragment(v: _View, word: str) -> Result | None:
    """A piece of a word cut off by a table cell, column or line boundary during conversion."""
    if not word.isalpha() or len(word) > 16:
        return None
    low = word.lower()
    if v.hint("join_freq") >= 2:
        return _r(Category.PARSING_ERROR, 80, "the flagged text is a fragment of a word split apart by PDF conversion")
    for s in v.suggestions[:3]:
        sl = s.lower()
        if " " in sl or len(sl) <= len(low):
            if len(sl) < len(low) and low.endswith(sl) and len(sl) >= 3 and len(low) - len(sl) <= 2 and (v.in_table or v.split_cells):
                return _r(Category.PARSING_ERROR, 65, f"stray letters have been glued to '{s}' during PDF conversion")
            continue
        if sl.endswith(low) and len(low) >= 4 and v.hint("freq") <= 1 and not re.search(r"['’‘\[–-]$", v.before):
            return _r(Category.PARSING_ERROR, 75, f"'{word}' is '{s}' with its first letters cut off by PDF conversion")
        if sl.startswith(low) and len(low) >= 3 and sl[len(low):] not in ("s", "es", "'s", "d", "ed", "n") and v.cell_edge:
            return _r(Category.PARSING_ERROR, 65, f"'{word}' is '{s}' cut short at a table or line boundary during PDF conversion")
    if v.split_cells >= 2 and v.cell_edge and (word.islower() or word.isupper()) and v.hint("freq") <= 2:
        return _r(Category.PARSING_ERROR, 70, "running text has been chopped into table cells by PDF conversion, splitting this word")
    if (word.islower() or word.isupper()) and len(word) >= 4 and v.hint("freq") <= 1 and (v.in_table or v.split_cells):
        completion = v.page_completion(low)
        if completion:
            return _r(Category.PARSING_ERROR, 65, f"'{word}' is part of '{completion}', split apart by PDF conversion")
    if v.in_table and v.hint("freq") <= 1:
        if word.isupper() and len(word) >= 3 and (re.search(r"[A-Z]{2,}\s*\|?\s*$", v.before) or re.match(r"^\s*\|?\s*[A-Z]{2,}", v.after)):
            return _r(Category.PARSING_ERROR, 70, "a capitalised heading has been split across table cells by PDF conversion")
        completion = v.page_completion(low)
        if completion:
            return _r(Category.PARSING_ERROR, 65, f"'{word}' is part of '{completion}', split across table cells by PDF conversion")
    return None


def _spelling(v: _View) -> Result:
    word = v.match.strip()
    low = word.lower()
    sugg = v.suggestions
    freq = v.hint("freq")
    if v.math and not v.transcript:
        return _r(Category.FALSE_POSITIVE, 80, "the flagged text is part of mathematical notation, not prose")
    res = _fragment(v, word)
    if res:
        return res
    if " " in word and any(_squash(s) == _squash(word) for s in sugg):
        return _r(Category.PARSING_ERROR, 70, "a single word has been split by a stray space, as happens in PDF conversion")
    if _is_us_spelling(word, sugg):
        return _r(Category.SPELLING_ERROR, 70, f"'{word}' is the American spelling; British English uses '{sugg[0]}'")
    joined = [s for s in sugg[:3] if _squash(s) == low.replace("-", "") and s.lower() != low]
    if joined and (word.islower() or "-" in word):
        if any("-" in s for s in joined):
            return _r(Category.PARSING_ERROR, 65, f"the hyphen of '{next(s for s in joined if '-' in s)}' has been lost, as happens in PDF conversion")
        if _hyphenable(joined[0]):
            return _r(Category.PARSING_ERROR, 60, f"'{word}' is the compound '{joined[0].replace(' ', '-')}' whose hyphen was lost in conversion")
        return _r(Category.FALSE_POSITIVE, 50, f"'{word}' is an accepted closed compound of '{joined[0]}'")
    if v.foreign_context:
        return _r(Category.FALSE_POSITIVE, 70, f"'{word}' is part of a passage in another language, where it is correct")
    if _welsh_score(word) >= 2 and not word.isupper():
        return _r(Category.FALSE_POSITIVE, 65, f"'{word}' looks like a correctly spelled Welsh word")
    sugg_freq = v.hint("sugg_freq")
    if len(sugg) == 1 and not v.more and len(word) >= 4 and _is_transposition(low, sugg[0].lower()):
        return _r(Category.SPELLING_ERROR, 70, f"'{word}' swaps two letters of '{sugg[0]}', a typing slip")
    if sugg and len(word) >= 4 and freq <= 1 and not v.transcript:
        close = [s for s in sugg[:3] if _damerau(low, s.lower()) == 1]
        if close and _is_transposition(low, close[0].lower()):
            return _r(Category.SPELLING_ERROR, 70, f"'{word}' swaps two letters of '{close[0]}'")
    if word[:1].isupper() and freq >= 2:
        return _r(Category.FALSE_POSITIVE, 75, f"'{word}' is a proper noun or specialist term used repeatedly in the document")
    if freq >= 3:
        return _r(Category.FALSE_POSITIVE, 70, f"'{word}' is used consistently throughout the document, so it is a deliberate term")
    return _r(Category.FALSE_POSITIVE, 55, f"'{word}' is most likely a correct specialist, foreign or proper-noun term")


_HYPHEN_PREFIXES = frozenset(
    "self well non anti co pre post semi multi cross long short high low ill half all ever full part "
    "cost time world first second third one two three four five ten hard soft open close free".split()
)


def _hyphenable(spaced: str) -> bool:
    """Two-part compounds that British English normally hyphenates (compound adjectives and self-/well-/non- words)."""
    parts = spaced.lower().split()
    if len(parts) != 2:
        return False
    first, second = parts
    return first in _HYPHEN_PREFIXES or second.endswith(("ed", "ing", "ly", "ful", "less", "free", "based", "led", "like", "wide"))


def _is_transposition(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


# ---- compounds and hyphens --------------------------------------------------------------------


def _is_compound_flag(v: _View) -> bool:
    if not v.suggestions:
        return False
    word = v.match.strip()
    return any(_squash(s) == _squash(word) and s.lower() != word.lower() for s in v.suggestions[:3])


def _compound(v: _View) -> Result | None:
    word = v.match.strip()
    target = next(s for s in v.suggestions[:3] if _squash(s) == _squash(word) and s.lower() != word.lower())
    words = word.split()
    if len(words) > 1 and all(w[:1].isupper() for w in words):
        return _r(Category.FALSE_POSITIVE, 60, f"'{word}' is a proper name, which keeps its own spacing")
    if " " in word and "-" in target:
        if _hyphenable(word) or v.hint("sugg_freq") >= 1:
            return _r(Category.PARSING_ERROR, 75, f"the hyphen of '{target}' has most likely been lost in PDF conversion")
        return _r(Category.PARSING_ERROR, 55, f"the hyphen of '{target}' may have been lost in PDF conversion")
    if " " in word:
        return _r(Category.PARSING_ERROR, 40, f"'{word}' is normally one word, '{target}', and the space was probably introduced by conversion")
    if "-" in word:
        return _r(Category.FALSE_POSITIVE, 60, f"the hyphenated form '{word}' is acceptable in British English")
    return _r(Category.FALSE_POSITIVE, 50, f"'{word}' is an accepted closed form, so splitting it is unnecessary")


# ---- repetition -------------------------------------------------------------------------------


_REPEAT_RULES = ("REPEAT", "REPETITION", "REPEATED", "DUPLICATE")


def _repetition(v: _View) -> Result | None:
    m = v.match
    parts = m.split()
    if v.transcript:
        return _r(Category.FALSE_POSITIVE, 75, "the repetition faithfully records spoken language in a transcript")
    verb_pair = len(parts) == 2 and parts[1].lower().startswith(parts[0].lower()[:3]) and parts[0].lower() != parts[1].lower()
    if v.rule.startswith(("REPEATED_VERBS", "ADVERB_VERB_ADVERB")) or verb_pair:
        if re.search(r"\S\s{2,}\S", m):
            return _r(Category.FALSE_POSITIVE, 45, "the two forms are separate entries laid out in columns of a word list")
        if "(to)" in v.before[-20:] or v.foreign_document or v.in_table:
            return _r(Category.PARSING_ERROR, 65, "two entries of a word list have run together because PDF conversion lost the separator")
        return _r(Category.ABSOLUTE_GRAMMATICAL_ERROR, 50, "two forms of the same verb are written side by side, so one of them is redundant")
    if len(parts) >= 2 and all(_MARK_CODE.match(p) for p in parts):
        return _r(Category.FALSE_POSITIVE, 70, "repeated codes such as mark-scheme labels are not a grammatical repetition")
    if v.foreign_context or v.foreign_document and v.in_table:
        return _r(Category.FALSE_POSITIVE, 60, "the repeated word belongs to a word list or another language where repetition is intended")
    if len(parts) >= 2 and parts[0] != parts[1] and parts[0].lower() == parts[1].lower():
        return _r(Category.PARSING_ERROR, 60, "the repeated word with different capitalisation comes from a heading or line merged during conversion")
    if v.in_table or re.search(r"\s{2,}", m):
        return _r(Category.PARSING_ERROR, 60, "the repetition comes from table cells or lines merged during PDF conversion")
    if parts and parts[0].lower() in ENGLISH_FUNCTION_WORDS | {"a", "an", "the", "to", "in", "is"}:
        return _r(Category.ABSOLUTE_GRAMMATICAL_ERROR, 60, f"the word '{parts[0]}' is accidentally repeated")
    return _r(Category.FALSE_POSITIVE, 45, "the repeated content word looks deliberate, for example for emphasis or in a list")


# ---- punctuation and spacing ------------------------------------------------------------------


def _spacing(v: _View) -> Result | None:
    if v.match.strip() in ("(", "[") and re.match(r"^\s*[^\W\d_]{2,}", v.after) and v.before[-1:].isalnum():
        return _r(Category.PARSING_ERROR, 65, "the space before the bracket was lost when the PDF was converted")
    if v.math:
        return _r(Category.FALSE_POSITIVE, 55, "the spacing is normal in mathematical or numeric notation")
    if v.foreign_context or v.foreign_document and "loose punctuation" in v.issue.message.lower():
        return _r(Category.FALSE_POSITIVE, 60, "the punctuation follows the conventions of the other language used here")
    if v.transcript:
        return _r(Category.FALSE_POSITIVE, 55, "the punctuation reflects the conventions of a spoken-language transcript")
    return _r(Category.PARSING_ERROR, 60, "misplaced spaces or punctuation marks typically come from PDF-to-Markdown conversion")


def _quotes(v: _View) -> Result | None:
    nxt = v.after[:1]
    prev = v.before[-1:]
    if v.match in ("'", "’") and nxt.isalpha() and (prev.isspace() or prev == ""):
        tail = re.match(r"[^\W\d_]+", v.after)
        if tail and len(tail.group(0)) <= 4 and tail.group(0).islower():
            return _r(Category.FALSE_POSITIVE, 55, "the apostrophe marks an elided word rather than an unclosed quotation")
    return _r(Category.PARSING_ERROR, 55, "the matching quotation mark was most likely lost or moved when the PDF was converted")


# ---- commas -----------------------------------------------------------------------------------


def _comma(v: _View) -> Result | None:
    if v.transcript:
        return _r(Category.FALSE_POSITIVE, 65, "spoken-language transcripts do not follow written punctuation conventions")
    if v.foreign_context:
        return _r(Category.FALSE_POSITIVE, 60, "the punctuation belongs to a passage in another language")
    if v.rule.startswith("COMMA_COMPOUND_SENTENCE"):
        if v.match.strip().lower() == "and" or v.rule == "COMMA_COMPOUND_SENTENCE":
            return _r(Category.STYLISTIC_PREFERENCE, 45, "a comma before a coordinating conjunction joining clauses is a stylistic choice")
        return _r(Category.POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR, 40, "a comma before the conjunction joining two independent clauses is advisable but debatable")
    return None


# ---- other grammar ----------------------------------------------------------------------------


_AGREEMENT = re.compile(r"AGREEMENT|_AGR\b|A_NNS|DT_DT|NON3PRS|MD_BASEFORM|BEEN_PART|HAVE_PART|SUBJECT_VERB")


def _grammar(v: _View) -> Result | None:
    if v.transcript:
        return _r(Category.FALSE_POSITIVE, 65, "the wording faithfully records spoken language in a transcript")
    if v.foreign_context or (v.foreign_document and v.in_table):
        return _r(Category.FALSE_POSITIVE, 65, "the flagged words belong to another language, which the English grammar rule cannot judge")
    if v.in_table and len(v.after.split("|")[0].strip()) == 0:
        return _r(Category.PARSING_ERROR, 50, "the sentence breaks off at a table cell boundary created by PDF conversion")
    if re.search(r"usual (?:preposition|collocation)", v.issue.message):
        return _r(Category.STYLISTIC_PREFERENCE, 50, "the preposition used is less usual but not wrong, so the change is a matter of style")
    if _AGREEMENT.search(v.rule):
        return _r(Category.ABSOLUTE_GRAMMATICAL_ERROR, 60, "the subject and verb or article and noun do not agree")
    return None


def _a_vs_an(v: _View) -> Result | None:
    if v.foreign_context or v.foreign_document:
        return _r(Category.FALSE_POSITIVE, 70, "'a' here is a word of another language, not the English article")
    nxt = re.match(r"\s*\**\s*([^\W\d_]+)", v.after)
    if v.transcript:
        return _r(Category.FALSE_POSITIVE, 60, "the article records hesitant spoken language in a transcript")
    if v.math or not nxt or len(nxt.group(1)) == 1:
        return _r(Category.FALSE_POSITIVE, 55, "the article is followed by notation or a label, not a word it must agree with")
    return _r(Category.ABSOLUTE_GRAMMATICAL_ERROR, 55, "the indefinite article does not match the sound of the following word")


# ---- case and locale --------------------------------------------------------------------------


def _case(v: _View) -> Result | None:
    return _r(Category.FALSE_POSITIVE, 60, "the capitalisation is deliberate in context (a label, code, heading or another language)")


def _locale(v: _View) -> Result | None:
    if _is_us_spelling(v.match, v.suggestions):
        return _r(Category.SPELLING_ERROR, 65, f"'{v.match}' is the American spelling; British English uses '{v.first}'")
    return _r(Category.FALSE_POSITIVE, 55, f"'{v.match}' is acceptable in British English in this context")


def _coherency(v: _View) -> Result | None:
    if _is_us_spelling(v.match, v.suggestions):
        return _r(Category.SPELLING_ERROR, 60, f"'{v.match}' is the American variant; British English uses '{v.first}'")
    if _is_compound_flag(v):
        return _compound(v)
    return _r(Category.FALSE_POSITIVE, 60, f"'{v.match}' is a standard British variant, so mixing variants is not an error here")


# ---- style ------------------------------------------------------------------------------------


def _style(v: _View) -> Result | None:
    if v.transcript:
        return _r(Category.FALSE_POSITIVE, 65, "informal wording is expected in a transcript of spoken language")
    if v.foreign_context:
        return _r(Category.FALSE_POSITIVE, 60, "the flagged words belong to a passage in another language")
    return _r(Category.STYLISTIC_PREFERENCE, 55, "LanguageTool suggests a more concise or formal wording, which is a matter of style")


def _diacritic(v: _View) -> Result | None:
    words = v.match.split()
    if v.match[:1].isupper() and (len(words) > 1 or not _sentence_start(v.before)):
        return _r(Category.FALSE_POSITIVE, 55, f"'{v.match}' is a name commonly written without its original accents in English")
    return _r(Category.FALSE_POSITIVE, 50, f"'{v.match}' is an accepted English spelling without the accent of '{v.first}'")


def _fallback(v: _View) -> Result:
    if v.transcript:
        return _r(Category.FALSE_POSITIVE, 55, "the wording faithfully records spoken language in a transcript")
    if v.foreign_context:
        return _r(Category.FALSE_POSITIVE, 55, "the flagged words belong to a passage in another language")
    default = TYPE_DEFAULT.get(v.kind, (Category.FALSE_POSITIVE, 45, "the flag does not point to a clear error"))
    return _r(*default)


def _is_spelling_rule(v: _View) -> bool:
    return v.rule.startswith(("MORFOLOGIK", "HUNSPELL")) or v.rule.endswith("_SPELLING_RULE")


_FAMILIES = (
    (_is_spelling_rule, _spelling),
    (lambda v: v.rule == "EN_WORD_COHERENCY" or v.kind == "inconsistency", _coherency),
    (lambda v: v.kind == "locale-violation", _locale),
    (lambda v: "DIACRITIC" in v.rule, _diacritic),
    (_is_compound_flag, _compound),
    (lambda v: any(k in v.rule for k in _REPEAT_RULES) or v.kind == "duplication", _repetition),
    (lambda v: "UNPAIRED" in v.rule or "QUOTE" in v.rule, _quotes),
    (lambda v: v.kind == "whitespace" or re.search(r"SPACE|PARENTHESIS|DOUBLE_PUNCTUATION|_PUNCT$|PUNCTUATION", v.rule) is not None, _spacing),
    (lambda v: "COMMA" in v.rule, _comma),
    (lambda v: v.rule in ("EN_A_VS_AN", "A_VS_AN"), _a_vs_an),
    (lambda v: "CASE" in v.rule or "CAPITALI" in v.rule or "UPPERCASE" in v.rule, _case),
    (lambda v: v.kind == "style", _style),
    (lambda v: v.kind == "grammar", _grammar),
)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def classify(issue: Issue, page_text: str | None, hints: dict) -> tuple[Category, int, str]:
    """Deterministic heuristic triage of one LanguageTool flag."""
    before, match, after = _split_context(issue.context or "", issue.issue or "")
    if not match:
        match = issue.issue or ""
    view = _View(
        issue=issue,
        page=page_text or "",
        hints=hints or {},
        before=before,
        match=match,
        after=after,
        suggestions=_suggestion_list(issue.suggestions),
        more=_more_suggestions(issue.suggestions),
        rule=(issue.rule_id or "").upper(),
        kind=(issue.type or "").lower(),
    )
    return _classify(view)
