"""Word fragments: a flagged word that is only the start or the end of a longer word of its document.

Converting a PDF to text splits words at line and column breaks (``cal`` / ``culate``,
``AP`` / ``PENDIX``), and LanguageTool flags the pieces. A piece is rarely a word the model has
answered in another document, so the answer memory cannot vouch for it; what gives it away is
that the document holds the whole word. ``DocumentWords`` holds, for one document, every proper
start and end (at least two letters, at least two letters short of the whole) of its longer
words, lower-cased, so each flag is looked up in constant time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_PIECE = 2  # letters in a piece
MIN_REST = 2  # letters of the whole word that the piece leaves out


@dataclass(frozen=True)
class DocumentWords:
    """The starts and ends of the longer words of one document (lower case)."""

    words: frozenset[str]
    starts: frozenset[str]
    ends: frozenset[str]

    @classmethod
    def from_text(cls, text: str) -> DocumentWords:
        words = frozenset(w.lower() for w in _LETTERS.findall(text or ""))
        starts: set[str] = set()
        ends: set[str] = set()
        for word in words:
            for cut in range(MIN_PIECE, len(word) - MIN_REST + 1):
                starts.add(word[:cut])
                ends.add(word[-cut:])
        return cls(words, frozenset(starts), frozenset(ends))

    def fragment(self, flagged: str) -> str:
        """``start``, ``end`` or ``both`` when the flagged word is a piece of a longer word; else ``""``.

        Only a single run of letters is a candidate (a phrase or a token with digits is not).
        """
        text = (flagged or "").strip().lower()
        if not text or _LETTERS.fullmatch(text) is None:
            return ""
        start, end = text in self.starts, text in self.ends
        if start and end:
            return "both"
        return "start" if start else "end" if end else ""
