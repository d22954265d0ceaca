"""Pack a document's flags into stable, page-aligned batches (docs/DESIGN.md §8).

A document's flags are grouped by page. Pages are then cut into *segments* (the run of
flagged pages up to and including an anchor page; batches never cross one) at anchor pages:
a page is an anchor when a hash of (document, page number) falls on 0 modulo ``anchor_pages``.
Anchors depend on nothing but the page number, so adding, removing or editing a flag only
changes the segment holding it; batches are packed greedily inside a segment (whole pages,
up to ``batch_size`` flags and ``max_batch_chars`` of page text) and never across segments.
An edit therefore re-sends one batch, and an insertion at most the batches of one segment,
never every batch after it. A page with more flags than ``batch_size`` is split into parts.

Each page a batch refers to is sent once in that batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Planned:
    """A flag with the page its context is on (None: preamble or nowhere)."""

    key: str
    page: int | None


@dataclass
class BatchSpec:
    batch_id: str
    keys: list[str]
    pages: list[int | None] = field(default_factory=list)


def _page_label(page: int | None) -> str:
    return "x" if page is None else f"{page:04d}"


def _is_anchor(document: str, page: int | None, anchor_pages: int) -> bool:
    if anchor_pages <= 1 or page is None:
        return True
    digest = hashlib.sha1(f"{document}\x1f{page}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % anchor_pages == 0


def make_batches(
    document: str,
    items: Sequence[Planned],
    page_chars: dict[int | None, int],
    batch_size: int,
    max_batch_chars: int,
    anchor_pages: int,
) -> list[BatchSpec]:
    """Partition a document's flags (in report order) into stable batches."""
    by_page: dict[int | None, list[str]] = {}
    for item in items:
        by_page.setdefault(item.page, []).append(item.key)
    ordered = sorted(by_page, key=lambda p: -1 if p is None else p)

    segments: list[list[int | None]] = []
    current: list[int | None] = []
    for page in ordered:
        current.append(page)
        if _is_anchor(document, page, anchor_pages):
            segments.append(current)
            current = []
    if current:
        segments.append(current)

    batches: list[BatchSpec] = []
    for segment in segments:
        chunk_pages: list[int | None] = []
        chunk_keys: list[str] = []
        chunk_chars = 0

        def flush() -> None:
            nonlocal chunk_pages, chunk_keys, chunk_chars
            if chunk_keys:
                label = f"p{_page_label(chunk_pages[0])}-{_page_label(chunk_pages[-1])}"
                batches.append(BatchSpec(label, chunk_keys, chunk_pages))
            chunk_pages, chunk_keys, chunk_chars = [], [], 0

        for page in segment:
            keys = by_page[page]
            chars = page_chars.get(page, 0)
            if len(keys) > batch_size:
                flush()
                for part, start in enumerate(range(0, len(keys), batch_size), start=1):
                    label = f"p{_page_label(page)}-{_page_label(page)}.{part}"
                    batches.append(BatchSpec(label, keys[start : start + batch_size], [page]))
                continue
            if chunk_keys and (
                len(chunk_keys) + len(keys) > batch_size or chunk_chars + chars > max_batch_chars
            ):
                flush()
            chunk_pages.append(page)
            chunk_keys.extend(keys)
            chunk_chars += chars
        flush()
    return batches
