"""Full, stable batches: content-defined cut points across page boundaries (docs/DESIGN.md §8).

A document's flags are put in page order (report order within a page). Every flag gets a
*place hash* from where it is (document, page, highlighted context, and which occurrence of
that context on the page it is), not from what LanguageTool says about it. A *run* ends after
each flag whose place hash falls on 0 modulo ``round(0.8 * batch_size)`` (an *anchor*). A run
shorter than ``batch_size // 2`` flags joins the run after it (at the end of the document, the
one before), so tiny batches are rare. A group longer than ``1.5 * batch_size`` flags (or with
more than ``max_batch_chars`` of page text) is cut in two, at a page boundary if there is one
where both halves fit, else at the flag with the highest second hash, and so on until every
batch fits. On the reference corpus batches average 9.4 flags at ``batch_size: 10``.

Why this is local: whether a flag is an anchor depends on that flag alone, so

* editing what a flag says (issue text, rule, message, suggestions, type, pass code) moves no
  cut point: exactly its batch changes;
* inserting a flag either joins its run (one batch changes) or, as an anchor or by making a
  short run long enough, cuts its group in two (two batches); deleting one shrinks its group
  (one) or joins two groups (one, or two when the joined group is cut in two again).

That holds whenever the groups a change touches hold at most ``1.5 * batch_size`` flags. A
change inside a longer group can move the cuts inside it and re-send more of that group's
batches, never anything outside it; docs/BENCHMARKS.md measures how often that happens.

Why not at most ``batch_size`` flags per batch: with a hard cap of ``batch_size`` the fewest
batches a document can have is ``ceil(flags / batch_size)``, and reaching it forces a document
whose flags are a multiple of ``batch_size`` into fixed positions: one flag inserted at its
start then shifts every batch. So ``batch_size`` is about the mean, and no batch holds more
than one and a half times it. At ``batch_size: 1`` every flag is a batch of its own.

A flag's page goes with it: each page a batch refers to is sent once in that batch (cut to
``max_page_chars`` around its flags by the planner). A page whose flags fall into two batches
is sent with each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

ANCHOR_SPACING = 0.8  # mean run, in batch sizes (runs are geometric: short ones join, long ones are cut)


@dataclass(frozen=True)
class Planned:
    """A flag, the page its context is on (None: preamble or nowhere) and where it is."""

    key: str
    page: int | None
    place: str = ""


@dataclass
class BatchSpec:
    batch_id: str
    keys: list[str]
    pages: list[int | None] = field(default_factory=list)


@dataclass(frozen=True)
class _Item:
    key: str
    page: int | None
    anchor: int  # decides the runs
    split: int  # decides where a long run is halved


def _page_label(page: int | None) -> str:
    return "x" if page is None else f"{page:04d}"


def _hashes(document: str, page: int | None, place: str, occurrence: int) -> tuple[int, int]:
    digest = hashlib.sha1(f"{document}\x1f{page}\x1f{place}\x1f{occurrence}".encode()).digest()
    return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:16], "big")


def _ordered(document: str, items: Sequence[Planned]) -> list[_Item]:
    by_page = sorted(items, key=lambda i: -1 if i.page is None else i.page)  # stable
    seen: dict[tuple[int | None, str], int] = {}
    out = []
    for item in by_page:
        occurrence = seen.get((item.page, item.place), 0)
        seen[(item.page, item.place)] = occurrence + 1
        out.append(_Item(item.key, item.page, *_hashes(document, item.page, item.place, occurrence)))
    return out


def _chars(run: Sequence[_Item], page_chars: dict[int | None, int]) -> int:
    return sum(page_chars.get(page, 0) for page in {i.page for i in run})


def _fit(
    run: list[_Item], cap: int, max_chars: int, page_chars: dict[int | None, int], out: list[list[_Item]]
) -> None:
    """Append ``run`` to ``out``, halved (recursively) until every piece fits."""
    if len(run) <= 1 or (len(run) <= cap and _chars(run, page_chars) <= max_chars):
        out.append(run)
        return
    n = len(run)
    if n <= 2 * cap:  # two pieces of at most ``cap`` flags
        low, high = max(1, n - cap), min(n - 1, cap)
    else:
        low, high = n // 2 - cap // 2, n // 2 + cap // 2
    # cut before run[j]: prefer a page boundary, then the highest split hash (content-defined)
    cut = max(range(low, high + 1), key=lambda j: (run[j].page != run[j - 1].page, run[j - 1].split))
    _fit(run[:cut], cap, max_chars, page_chars, out)
    _fit(run[cut:], cap, max_chars, page_chars, out)


def make_batches(
    document: str,
    items: Sequence[Planned],
    page_chars: dict[int | None, int],
    batch_size: int,
    max_batch_chars: int,
) -> list[BatchSpec]:
    """Partition a document's flags into stable batches of about ``batch_size`` flags."""
    ordered = _ordered(document, items)
    spacing = max(1, round(ANCHOR_SPACING * batch_size))
    shortest = batch_size // 2
    cap = batch_size + batch_size // 2
    groups: list[list[_Item]] = []
    group: list[_Item] = []
    run = 0
    for item in ordered:
        group.append(item)
        run += 1
        if item.anchor % spacing == 0:
            if run >= shortest:
                groups.append(group)
                group = []
            run = 0
    if group:
        if groups and len(group) < shortest:
            groups[-1].extend(group)
        else:
            groups.append(group)
    pieces: list[list[_Item]] = []
    for group in groups:
        _fit(group, cap, max_batch_chars, page_chars, pieces)
    batches = []
    for piece in pieces:
        keys = [i.key for i in piece]
        pages = list(dict.fromkeys(i.page for i in piece))
        digest = hashlib.sha1("\x1f".join(keys).encode()).hexdigest()[:6]
        label = f"p{_page_label(pages[0])}-{_page_label(pages[-1])}-{digest}"
        batches.append(BatchSpec(label, keys, pages))
    return batches
