"""The answer memory: how the model answered the same flagged word before, keyed by hashes.

LanguageTool raises the same words again and again (proper nouns, Welsh words, conversion
artefacts), and a word the model has already answered in other documents is a word the
classifier can be trusted on more than one it never saw. The memory counts, for each
(rule id, normalised word) of the training answers, the answers per category; the keys are
stored as 64-bit hashes (BLAKE2b), so the saved model holds no text of the corpus.

The memory decides a flag's *segment* (the word never answered, answered once, answered at
least twice in the training documents), and each segment has its own thresholds
(docs/DESIGN.md §30). During training a flag's segment is counted without the answers of its
own document (and, in cross-validation, from the training folds only), as it will be for a
flag of a new document.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from ..models import Issue
from .features import normalise_word

SEGMENTS = ("unseen", "seen_once", "seen_more")


def memory_key(issue: Issue) -> int:
    """The hashed (rule id, normalised word) of a flag, a signed 64-bit integer."""
    text = f"{(issue.rule_id or '').upper()}\x1f{normalise_word(issue.issue)}"
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, person=b"cascade-memory").digest()
    return int.from_bytes(digest, "little", signed=True)


def segment_of(count: int) -> str:
    """The segment of a flag whose word the model answered ``count`` times in other documents."""
    return SEGMENTS[min(max(count, 0), len(SEGMENTS) - 1)]


def counts_from(keys: Sequence[int], known: Iterable[int]) -> list[int]:
    """For each key, how many times it occurs in ``known`` (the training answers' keys)."""
    seen = Counter(known)
    return [seen[k] for k in keys]


def memory_arrays(keys: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """The saved form of the memory: sorted unique keys (int64) and their counts (int64)."""
    seen = Counter(keys)
    ordered = sorted(seen)
    return np.array(ordered, dtype=np.int64), np.array([seen[k] for k in ordered], dtype=np.int64)


def lookup(keys: Sequence[int], memory_keys: np.ndarray, memory_counts: np.ndarray) -> list[int]:
    """How many training answers share each key (0 for a key never seen)."""
    if not len(memory_keys) or not len(keys):
        return [0] * len(keys)
    wanted = np.asarray(keys, dtype=np.int64)
    at = np.searchsorted(memory_keys, wanted)
    at = np.minimum(at, len(memory_keys) - 1)
    found = memory_keys[at] == wanted
    return np.where(found, memory_counts[at], 0).astype(int).tolist()
