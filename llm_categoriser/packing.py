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
change inside a longer group can move the cuts inside it. So a rerun passes the document's last
partition (``previous``): every earlier batch whose flags are all still here, side by side, is
kept, and only the flags between kept batches are packed again, which bounds an insertion or a
deletion at two batches always (docs/DESIGN.md §8).

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
from collections.abc import Iterable, Sequence
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


def _groups(ordered: Sequence[_Item], batch_size: int) -> list[list[_Item]]:
    """Runs of flags ended by anchors; a run shorter than half a batch joins its neighbour."""
    spacing = max(1, round(ANCHOR_SPACING * batch_size))
    shortest = batch_size // 2
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
    return groups


def _fresh(
    ordered: Sequence[_Item], batch_size: int, max_chars: int, page_chars: dict[int | None, int]
) -> list[list[_Item]]:
    cap = batch_size + batch_size // 2
    pieces: list[list[_Item]] = []
    for group in _groups(ordered, batch_size):
        _fit(group, cap, max_chars, page_chars, pieces)
    return pieces


def _kept(
    ordered: Sequence[_Item],
    previous: Iterable[Sequence[str]],
    cap: int,
    max_chars: int,
    page_chars: dict[int | None, int],
) -> dict[int, int]:
    """Start -> end of each earlier batch whose flags are all still here, side by side, and fit."""
    at = {item.key: n for n, item in enumerate(ordered)}
    kept: dict[int, int] = {}
    for keys in previous:
        places = sorted(at.get(k, -1) for k in keys)
        if not places or places[0] < 0 or places[-1] - places[0] != len(places) - 1:
            continue  # a flag is gone, or a flag was inserted among them
        if len(set(places)) != len(places):
            continue
        run = ordered[places[0] : places[-1] + 1]
        if len(run) > 1 and (len(run) > cap or _chars(run, page_chars) > max_chars):
            continue
        kept[places[0]] = places[-1] + 1
    return kept


def _repack(
    ordered: Sequence[_Item],
    previous: Iterable[Sequence[str]],
    batch_size: int,
    max_chars: int,
    page_chars: dict[int | None, int],
) -> list[list[_Item]]:
    """Keep every earlier batch a change does not touch; pack only the flags around the change."""
    cap = batch_size + batch_size // 2
    kept = _kept(ordered, previous, cap, max_chars, page_chars)
    segments: list[tuple[list[_Item], bool]] = []  # (flags, kept as they were)
    gap: list[_Item] = []
    n = 0
    while n < len(ordered):
        if n in kept:
            if gap:
                segments.append((gap, False))
                gap = []
            segments.append((list(ordered[n : kept[n]]), True))
            n = kept[n]
        else:
            gap.append(ordered[n])
            n += 1
    if gap:
        segments.append((gap, False))
    # a gap shorter than half a batch joins the smaller batch beside it that has room for it
    # (the one before on a tie); with no room on either side it is a batch of its own
    joins: dict[int, int] = {}
    for n, (flags, was_kept) in enumerate(segments):
        if was_kept or len(flags) >= batch_size // 2:
            continue
        beside = [
            m
            for m in (n - 1, n + 1)
            if 0 <= m < len(segments)
            and m not in joins.values()
            and len(segments[m][0]) + len(flags) <= cap
            and _chars([*segments[m][0], *flags], page_chars) <= max_chars
        ]
        if beside:
            joins[n] = min(beside, key=lambda m: (len(segments[m][0]), m > n))
    pieces: list[list[_Item]] = []
    for n, (flags, was_kept) in enumerate(segments):
        if n in joins:
            continue
        before = segments[n - 1][0] if joins.get(n - 1) == n else []
        after = segments[n + 1][0] if joins.get(n + 1) == n else []
        if was_kept and not before and not after:
            pieces.append(flags)
            continue
        joined = [*before, *flags, *after]
        if len(joined) <= 2 * cap:
            _fit(joined, cap, max_chars, page_chars, pieces)  # one batch, or two halves
        else:
            pieces.extend(_fresh(joined, batch_size, max_chars, page_chars))
    return pieces


def make_batches(
    document: str,
    items: Sequence[Planned],
    page_chars: dict[int | None, int],
    batch_size: int,
    max_batch_chars: int,
    previous: Iterable[Sequence[str]] = (),
) -> list[BatchSpec]:
    """Partition a document's flags into stable batches of about ``batch_size`` flags.

    ``previous`` is the document's last partition (each batch's flag keys), made with the same
    ``batch_size`` and ``max_batch_chars``: every batch of it whose flags are all still here,
    side by side, is kept as it was, and only the flags around a change are packed again.
    """
    ordered = _ordered(document, items)
    previous = [list(keys) for keys in previous]
    if previous:
        pieces = _repack(ordered, previous, batch_size, max_batch_chars, page_chars)
    else:
        pieces = _fresh(ordered, batch_size, max_batch_chars, page_chars)
    batches = []
    for piece in pieces:
        keys = [i.key for i in piece]
        pages = list(dict.fromkeys(i.page for i in piece))
        digest = hashlib.sha1("\x1f".join(keys).encode()).hexdigest()[:6]
        label = f"p{_page_label(pages[0])}-{_page_label(pages[-1])}-{digest}"
        batches.append(BatchSpec(label, keys, pages))
    return batches
