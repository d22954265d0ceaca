"""Packing: full batches with content-defined cut points, and what an edit, insertion or deletion changes."""

from __future__ import annotations

import math
import random

import pytest

from llm_categoriser.packing import Planned, make_batches

DOC = "S/doc.md"


def plan(
    items: list[Planned],
    batch_size: int = 10,
    max_chars: int = 40000,
    page_chars: int = 1000,
    previous: list | None = None,
):
    pages = {i.page for i in items}
    last = [b.keys for b in previous or ()]
    return make_batches(DOC, items, {p: page_chars for p in pages}, batch_size, max_chars, last)


def document(rng: random.Random, flags: int, pages: int) -> list[Planned]:
    """Flags spread over pages, several per page, each with its own context."""
    out = []
    for n in range(flags):
        page = rng.randint(1, pages)
        out.append(Planned(f"k{n}-{rng.getrandbits(32)}", page, f"context {n} {rng.getrandbits(32)}"))
    return out


def new_batches(before, after) -> list[tuple[str, ...]]:
    old = {tuple(b.keys) for b in before}
    return [tuple(b.keys) for b in after if tuple(b.keys) not in old]


def contiguous(before, after) -> bool:
    """The unchanged batches are a prefix and a suffix of both lists: nothing far away moves."""
    old, new = [tuple(b.keys) for b in before], [tuple(b.keys) for b in after]
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    changed_new = new[head : len(new) - tail]
    old_set = set(old)
    return not any(b in old_set for b in changed_new)


def test_every_flag_once_bounds_and_unique_ids():
    rng = random.Random(1)
    for size in (1, 2, 5, 10, 25):
        items = document(rng, 300, 80)
        batches = plan(items, batch_size=size)
        keys = [k for b in batches for k in b.keys]
        assert sorted(keys) == sorted(i.key for i in items)
        assert all(1 <= len(b.keys) <= size + size // 2 for b in batches)
        assert len({b.batch_id for b in batches}) == len(batches)
        if size == 1:
            assert len(batches) == len(items)


def test_batches_are_full_on_average_and_cross_pages():
    rng = random.Random(2)
    flags = batches = 0
    for _ in range(40):
        items = document(rng, rng.randint(20, 200), rng.randint(5, 60))
        flags += len(items)
        batches += len(plan(items))
    # page-aligned packing of the same documents gives far more; the fewest possible is flags / 10
    assert batches <= math.ceil(flags / 10) * 1.15


def test_flags_are_in_page_order_and_each_page_listed_once():
    rng = random.Random(3)
    items = document(rng, 120, 30)
    page_of = {i.key: i.page for i in items}
    order = [k for b in plan(items) for k in b.keys]
    assert [page_of[k] for k in order] == sorted(page_of[k] for k in order)
    for b in plan(items):
        assert b.pages == list(dict.fromkeys(page_of[k] for k in b.keys))


def test_editing_what_a_flag_says_changes_exactly_its_batch():
    rng = random.Random(4)
    for _ in range(10):
        items = document(rng, rng.randint(30, 250), rng.randint(5, 50))
        before = plan(items)
        for at in range(0, len(items), 7):
            edited = list(items)
            edited[at] = Planned(items[at].key + "-edited", items[at].page, items[at].place)
            after = plan(edited)
            assert len(after) == len(before)
            assert len(new_batches(before, after)) == 1


def change_one(rng: random.Random, items: list[Planned], change: str) -> list[Planned]:
    if change == "insert":
        at = rng.randint(0, len(items))
        page = items[min(at, len(items) - 1)].page
        flag = Planned(f"new-{rng.getrandbits(32)}", page, f"new context {rng.getrandbits(32)}")
        return [*items[:at], flag, *items[at:]]
    at = rng.randrange(len(items))
    if change == "delete":
        return items[:at] + items[at + 1 :]
    return [
        *items[:at],
        Planned(items[at].key + "-edited", items[at].page, items[at].place),
        *items[at + 1 :],
    ]


@pytest.mark.parametrize("change", ["insert", "delete", "edit"])
def test_with_the_last_partition_a_change_re_sends_at_most_two_batches_always(change):
    """The rerun's plan keeps every earlier batch the change does not touch (docs/DESIGN.md §8)."""
    rng = random.Random({"insert": 11, "delete": 12, "edit": 13}[change])
    counts: list[int] = []
    for _ in range(40):
        items = document(rng, rng.randint(2, 250), rng.randint(1, 50))
        before = plan(items)
        for _ in range(40):
            changed = change_one(rng, items, change)
            after = plan(changed, previous=before)
            assert sorted(k for b in after for k in b.keys) == sorted(i.key for i in changed)
            assert all(1 <= len(b.keys) <= 15 for b in after)
            assert contiguous(before, after)
            counts.append(len(new_batches(before, after)))
    assert max(counts) <= (1 if change == "edit" else 2), max(counts)
    if change != "delete":
        assert min(counts) == 1


def test_the_last_partition_of_the_same_flags_is_kept_as_it_was():
    rng = random.Random(14)
    for _ in range(20):
        items = document(rng, rng.randint(1, 200), rng.randint(1, 40))
        before = plan(items)
        assert [b.keys for b in plan(items, previous=before)] == [b.keys for b in before]
        assert [b.batch_id for b in plan(items, previous=before)] == [b.batch_id for b in before]


def test_a_long_series_of_changes_keeps_batches_full_and_bounded():
    """Kept batches drift from what a fresh plan would cut, but stay within the bounds."""
    rng = random.Random(15)
    flags = drifted = fresh = 0
    for _ in range(12):
        items = document(rng, rng.randint(30, 250), rng.randint(5, 50))
        batches = plan(items)
        for _ in range(100):
            items = change_one(
                rng, items, rng.choice(["insert", "delete", "edit"]) if len(items) > 1 else "insert"
            )
            batches = plan(items, previous=batches)
            assert all(1 <= len(b.keys) <= 15 for b in batches)
        flags += len(items)
        drifted += len(batches)
        fresh += len(plan(items))
    assert drifted <= fresh * 1.15, (drifted, fresh)
    assert drifted <= math.ceil(flags / 10) * 1.3


def test_a_partition_that_no_longer_fits_is_packed_afresh():
    items = [Planned(f"k{p}", p, f"c{p}") for p in range(1, 9)]
    wide = plan(items, max_chars=40000, page_chars=1000)
    assert len(wide) == 1
    narrow = plan(items, max_chars=2500, page_chars=1000, previous=wide)
    assert all(len(b.pages) <= 2 for b in narrow)


@pytest.mark.parametrize("change", ["insert", "delete"])
def test_an_insertion_or_deletion_changes_at_most_two_batches_nearly_always(change):
    rng = random.Random(5 if change == "insert" else 6)
    counts: list[int] = []
    for _ in range(30):
        items = document(rng, rng.randint(30, 250), rng.randint(5, 50))
        before = plan(items)
        for _ in range(30):
            if change == "insert":
                at = rng.randint(0, len(items))
                page = items[min(at, len(items) - 1)].page
                flag = Planned(f"new-{rng.getrandbits(32)}", page, f"new context {rng.getrandbits(32)}")
                changed = [*items[:at], flag, *items[at:]]
            else:
                at = rng.randrange(len(items))
                changed = items[:at] + items[at + 1 :]
            after = plan(changed)
            assert contiguous(before, after)
            counts.append(len(new_batches(before, after)))
    within = sum(1 for c in counts if c <= 2) / len(counts)
    assert within >= 0.95, (within, max(counts))
    assert max(counts) <= 4


def test_short_groups_give_the_two_batch_bound_exactly():
    """Flags on distinct pages with few flags: every group fits, so the bound always holds."""
    rng = random.Random(7)
    items = document(rng, 40, 400)
    before = plan(items)
    assert all(len(b.keys) <= 15 for b in before)
    for at in range(len(items) + 1):
        flag = Planned(f"new{at}", items[min(at, len(items) - 1)].page, f"fresh {at}")
        inserted = plan([*items[:at], flag, *items[at:]])
        assert len(new_batches(before, inserted)) <= 2
    for at in range(len(items)):
        assert len(new_batches(before, plan(items[:at] + items[at + 1 :]))) <= 2


def test_page_text_budget_cuts_a_batch():
    items = [Planned(f"k{p}", p, f"c{p}") for p in range(1, 9)]
    batches = plan(items, max_chars=2500, page_chars=1000)
    assert all(len(b.pages) <= 2 for b in batches)
    assert sorted(k for b in batches for k in b.keys) == sorted(i.key for i in items)


def test_unpaged_flags_come_first_and_ids_name_the_pages():
    batches = plan([Planned("b", 1, "x"), Planned("a", None, "y")], batch_size=1)
    assert batches[0].pages == [None]
    assert batches[0].batch_id.startswith("px-x-")
    assert batches[1].batch_id.startswith("p0001-0001-")


def test_identical_contexts_on_one_page_still_differ():
    items = [Planned(f"k{n}", 3, "same words") for n in range(60)]
    batches = plan(items)
    assert len(batches) > 1  # not one anchor for all (or none): occurrences are hashed too
    assert all(len(b.keys) <= 15 for b in batches)
