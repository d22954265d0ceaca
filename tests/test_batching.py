from __future__ import annotations

from llm_categoriser.packing import Planned, make_batches


def plan(items, batch_size=10, anchor_pages=4, max_chars=40000):
    pages = {p for _, p in items}
    return make_batches(
        "S/doc.md",
        [Planned(k, p) for k, p in items],
        {p: 1000 for p in pages},
        batch_size,
        max_chars,
        anchor_pages,
    )


def sample(n_pages=60, per_page=3):
    return [(f"k{p}-{i}", p) for p in range(1, n_pages + 1) for i in range(per_page)]


def test_every_issue_once_and_bounds_hold():
    items = sample()
    batches = plan(items)
    keys = [k for b in batches for k in b.keys]
    assert sorted(keys) == sorted(k for k, _ in items)
    assert all(len(b.keys) <= 10 for b in batches)
    assert len({b.batch_id for b in batches}) == len(batches)


def test_batches_are_whole_pages_unless_a_page_is_too_big():
    items = sample() + [(f"big{i}", 99) for i in range(25)]
    batches = plan(items)
    big = [b for b in batches if b.pages == [99]]
    assert [len(b.keys) for b in big] == [10, 10, 5]
    for b in batches:
        if b.pages != [99]:
            assert {p for k, p in items if k in b.keys} == set(b.pages)


def test_editing_an_issue_changes_only_its_batch():
    items = sample()
    before = {b.batch_id: b.keys for b in plan(items)}
    edited = [(k + "-edited" if k == "k30-1" else k, p) for k, p in items]
    after = {b.batch_id: b.keys for b in plan(edited)}
    changed = [bid for bid in after if after[bid] != before.get(bid)]
    assert len(changed) == 1


def test_inserting_an_issue_changes_only_its_segment():
    items = sample()
    before = {tuple(b.keys) for b in plan(items)}
    inserted = [*items[:40], ("new", items[40][1]), *items[40:]]
    after = {tuple(b.keys) for b in plan(inserted)}
    assert len(after - before) <= 3
    assert len(before - after) <= 3


def test_character_budget_starts_new_batch():
    items = [(f"k{p}", p) for p in range(1, 9)]
    batches = plan(items, anchor_pages=64, max_chars=2500)
    assert all(len(b.pages) <= 2 for b in batches)


def test_unpaged_issues_come_first():
    batches = plan([("a", None), ("b", 1)], anchor_pages=1)
    assert batches[0].pages == [None]
    assert batches[0].batch_id == "px-x"
