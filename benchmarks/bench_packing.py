"""Requests and locality of the packing on the reference corpus, in-process (no Snakemake).

``packing_numbers`` plans the corpus as the workflow does (provider gemini, ``batch_size`` 10),
counts the batches, and then replays every single-flag change on every document through
``packing.make_batches`` with the plan's own inputs (each flag's key, page and highlighted
context in report order, the page lengths sent) and, as a rerun's plan has it from the
manifest, the partition before the change: an edit of each flag (what it says changes, where
it is does not), the deletion of each flag, and an insertion at every position (a new flag on
its neighbour's page). For each change it counts the batches that are new, that is the
requests a rerun sends.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llm_categoriser.packing import Planned, make_batches  # noqa: E402
from llm_categoriser.plan import build_plan  # noqa: E402
from llm_categoriser.plan_jobs import planned_batches  # noqa: E402
from llm_categoriser.records import Manifest, read_record  # noqa: E402
from llm_categoriser.settings import resolve  # noqa: E402


def _documents(settings: Any, plan: Any) -> list[tuple[str, list[Planned], dict[int | None, int]]]:
    layout = settings.layout
    out = []
    for doc in plan.documents:
        manifest = read_record(layout.manifest(doc.subject, doc.document), Manifest)
        page_of: dict[str, int | None] = {}
        place_of: dict[str, str] = {}
        page_chars: dict[int | None, int] = {}
        for batch in planned_batches(layout, doc.subject, doc.document) if doc.batch_ids else []:
            for flag in batch.flags:
                page_of[flag.key] = flag.context_page
                place_of[flag.key] = flag.highlighted_context
            for page in batch.pages:
                page_chars[page.page] = max(page_chars.get(page.page, 0), len(page.text))
        items = [Planned(f.key, page_of[f.key], place_of[f.key]) for f in manifest.flags]
        out.append((f"{doc.subject}/{doc.filename}", items, page_chars))
    return out


def _new(before: set[tuple[str, ...]], after: list[Any]) -> int:
    return sum(1 for b in after if tuple(b.keys) not in before)


def packing_numbers(
    documents_dir: Path, scratch: Path, batch_size: int = 10, seed: int = 15
) -> dict[str, Any]:
    settings = resolve(
        {
            "documents_dir": str(documents_dir),
            "data_dir": str(scratch),
            "provider": "gemini",
            "batch_size": batch_size,
        },
        env={},
    )
    plan = build_plan(settings)
    sizes: Counter[int] = Counter()
    rng = random.Random(seed)
    changes: dict[str, Counter[int]] = {"edit": Counter(), "insert": Counter(), "delete": Counter()}
    for name, items, chars in _documents(settings, plan):

        def pack(
            flags: list[Planned],
            previous: list[list[str]] | None = None,
            name: str = name,
            chars: dict[int | None, int] = chars,
        ) -> list[Any]:
            return make_batches(name, flags, chars, batch_size, settings.max_batch_chars, previous or ())

        batches = pack(items)
        last = [b.keys for b in batches]
        sizes.update(len(b.keys) for b in batches)
        before = {tuple(b.keys) for b in batches}
        for at, flag in enumerate(items):
            edited = [*items[:at], Planned(flag.key + "-edited", flag.page, flag.place), *items[at + 1 :]]
            changes["edit"][_new(before, pack(edited, last))] += 1
            changes["delete"][_new(before, pack(items[:at] + items[at + 1 :], last))] += 1
        for at in range(len(items) + 1):
            page = items[min(at, len(items) - 1)].page
            new = Planned(f"inserted-{at}", page, f"an inserted flag {rng.getrandbits(48)}")
            changes["insert"][_new(before, pack([*items[:at], new, *items[at:]], last))] += 1
    out: dict[str, Any] = {
        "batch_size": batch_size,
        "flags": plan.flags,
        "documents": len(plan.documents),
        "batches": plan.batches,
        "batch_sizes": dict(sorted(sizes.items())),
        "max_batch": max(sizes),
        "mean_batch": plan.flags / plan.batches,
    }
    for kind, counts in changes.items():
        total = sum(counts.values())
        out[kind] = {
            "changes": total,
            "resent": dict(sorted(counts.items())),
            "at_most_one": sum(v for k, v in counts.items() if k <= 1) / total,
            "at_most_two": sum(v for k, v in counts.items() if k <= 2) / total,
            "max": max(counts),
            "mean": sum(k * v for k, v in counts.items()) / total,
        }
    return out
