"""Split converted Markdown into pages and find a flag's place on them.

Pages are delimited by marker lines ``{N}`` followed by dashes. A page runs from its marker
line to the next marker line. Text before the first marker (or the whole document when it
has no markers) is the page ``None``. A marker repeated later in the document appends to
the page of that number, so nothing is lost when a converter duplicates markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = re.compile(r"^\{(\d+)\}-+[ \t]*\r?$", re.MULTILINE)
# MARKER without its "^": a pattern that starts with a literal is searched for by that literal,
# where "^" is tried at every character of the text; ``_markers`` keeps the matches that start
# a line, which are MARKER's (a match ends with its line, so it hides none of them).
_MARKER_ANYWHERE = re.compile(r"\{(\d+)\}-+[ \t]*\r?$", re.MULTILINE)
_HIGHLIGHT = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)


@dataclass
class Document:
    text: str
    pages: dict[int | None, str]
    duplicate_markers: list[int] = field(default_factory=list)
    out_of_order: bool = False

    @property
    def has_markers(self) -> bool:
        return any(number is not None for number in self.pages)


def _markers(text: str) -> list[re.Match[str]]:
    """``MARKER.finditer(text)``, found faster."""
    return [m for m in _MARKER_ANYWHERE.finditer(text) if not m.start() or text[m.start() - 1] == "\n"]


def split_pages(text: str) -> Document:
    pages: dict[int | None, str] = {}
    duplicates: list[int] = []
    out_of_order = False
    matches = _markers(text)
    if not matches:
        return Document(text=text, pages={None: text})
    preamble = text[: matches[0].start()]
    if preamble.strip():
        pages[None] = preamble
    previous = -1
    for i, match in enumerate(matches):
        number = int(match.group(1))
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        chunk = text[match.start() : end]
        if number in pages:
            duplicates.append(number)
            pages[number] = pages[number] + chunk
        else:
            pages[number] = chunk
        if number < previous:
            out_of_order = True
        previous = number
    return Document(text=text, pages=pages, duplicate_markers=duplicates, out_of_order=out_of_order)


def context_parts(context: str) -> tuple[str, str, str]:
    """Split LanguageTool's highlighted context into (before, match, after), without ``...``."""
    text = context.strip()
    if text.startswith("..."):
        text = text[3:]
    if text.endswith("..."):
        text = text[:-3]
    found = _HIGHLIGHT.search(text)
    if not found:
        return "", text.strip(), ""
    return text[: found.start()], found.group(1), text[found.end() :]


def _pattern(text: str) -> re.Pattern[str] | None:
    words = text.split()
    if not words:
        return None
    return re.compile(r"\s+".join(re.escape(w) for w in words))


def locate(page_text: str, context: str, issue: str = "") -> int | None:
    """Character offset of the flagged match in ``page_text``, or None when it is not there.

    The Issue text is the needle (a context may hold the document's own ``**bold**`` markup
    besides the highlight); whitespace is matched loosely, as LanguageTool folds line breaks.
    """
    _, match, _ = context_parts(context)
    needle = issue.strip() or match.strip()
    if not needle:
        return None
    plain = context.strip().removeprefix("...").removesuffix("...").replace("**", "")
    at = plain.find(needle)
    before, after = (plain[:at], plain[at + len(needle) :]) if at >= 0 else ("", "")
    inner = _pattern(needle)
    for width in (30, 12, 0):
        lead, tail = before[-width:] if width else "", after[:width] if width else ""
        # whole words only, so a partial word at the edge of the window cannot spoil the match
        if width:
            lead = lead.split(" ", 1)[-1] if " " in lead else lead
            tail = tail.rsplit(" ", 1)[0] if " " in tail else tail
        pattern = _pattern(lead + needle + tail)
        if pattern is None:
            continue
        found = pattern.search(page_text)
        if found:
            sub = inner.search(page_text, found.start()) if inner else None
            return sub.start() if sub else found.start()
    return None


def find_page(document: Document, context: str, issue: str = "") -> int | None:
    """The page whose text holds the context; None if it is found nowhere (or only in the preamble)."""
    for number, text in document.pages.items():
        if number is not None and locate(text, context, issue) is not None:
            return number
    return None


def cut_page(text: str, anchors: list[int], budget: int) -> tuple[str, bool]:
    """Bound a page to ``budget`` characters, keeping windows around the anchors.

    Returns the text and whether it was cut. At most ``budget`` characters of the page are
    kept, however many anchors there are; each omitted stretch is replaced by a one-line note
    so the model (and a reader) knows the page is incomplete.
    """
    if len(text) <= budget:
        return text, False
    points = sorted(set(a for a in anchors if 0 <= a <= len(text))) or [0]
    width = max(2, budget // len(points))
    spans: list[list[int]] = []
    for point in points:
        start = max(0, point - width // 2)
        end = min(len(text), start + width)
        start = max(0, end - width)
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        if start > cursor:
            pieces.append(f"\n[… page cut: {start - cursor} characters omitted …]\n")
        pieces.append(text[start:end])
        cursor = end
    if cursor < len(text):
        pieces.append(f"\n[… page cut: {len(text) - cursor} characters omitted …]\n")
    return "".join(pieces), True
