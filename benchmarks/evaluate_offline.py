#!/usr/bin/env python
"""Measure the offline provider against the reference labels of the real corpus.

Usage::

    python benchmarks/evaluate_offline.py [--corpus ../shared/corpus] [--json PATH] [--errors N]

It runs what a user runs: the product's planner builds the plan of the whole corpus (pages,
hints, batches) in a temporary data folder, and every planned batch is categorised by the
offline provider through the same prompt rendering and answer validation as a model's answer.
The answers are then compared with ``labels/gemini.csv`` (one model's opinion, not ground
truth).

The subjects are split in two with a seeded shuffle (``--seed``, default 18): the rules are set
on the first half ("dev") and measured on the other ("held-out"). The corpus is read-only
reference data outside the repository; when it is absent the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from llm_categoriser.categories import CATEGORY_NAMES  # noqa: E402
from llm_categoriser.categorise import categorise_batch  # noqa: E402
from llm_categoriser.lt_report import load_report  # noqa: E402
from llm_categoriser.models import Issue  # noqa: E402
from llm_categoriser.plan import build_plan  # noqa: E402
from llm_categoriser.plan_jobs import planned_batches  # noqa: E402
from llm_categoriser.providers import make_provider  # noqa: E402
from llm_categoriser.settings import resolve  # noqa: E402

REAL_ERRORS = frozenset(
    {
        "SPELLING_ERROR",
        "ABSOLUTE_GRAMMATICAL_ERROR",
        "POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR",
        "CONSISTENCY_ERROR",
        "AMBIGUOUS_PHRASING",
        "FACTUAL_INACCURACY",
    }
)
CONFIDENT = 75
DEFAULT_SEED = 18
BUCKETS: tuple[tuple[int, int], ...] = ((0, 49), (50, 59), (60, 69), (70, 74), (75, 84), (85, 94), (95, 100))


@dataclass(frozen=True)
class Judged:
    """One labelled flag: the offline answer next to the reference label."""

    issue: Issue
    category: str
    confidence: int
    reason: str
    gold: str

    @property
    def real(self) -> bool:
        return self.category in REAL_ERRORS

    @property
    def gold_real(self) -> bool:
        return self.gold in REAL_ERRORS


def split_subjects(subjects: list[str], seed: int) -> tuple[list[str], list[str]]:
    """(dev, held-out): a seeded shuffle of the sorted subjects, cut in half."""
    order = sorted(subjects)
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def label_identity(subject: str, filename: str, issue: str, context: str) -> tuple[str, str, str, str]:
    return (subject, filename, issue, context)


def load_labels(path: Path) -> dict[tuple, str]:
    """(subject, filename, issue, context, occurrence) -> category, as the labels were joined."""
    labels: dict[tuple, str] = {}
    seen: Counter = Counter()
    with path.open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            ident = label_identity(rec["Subject"], rec["Filename"], rec["Issue"], rec["Highlighted Context"])
            labels[(*ident, seen[ident])] = rec["error_category"].strip()
            seen[ident] += 1
    return labels


def run_offline(documents_dir: Path, data_dir: Path) -> tuple[dict[str, tuple[str, int, str]], dict]:
    """Plan the corpus with the product's planner and answer every batch with the offline provider."""
    config = {"documents_dir": str(documents_dir), "data_dir": str(data_dir), "provider": "offline"}
    settings = resolve(config, env={})  # the built-in defaults, whatever the environment says
    t0, c0 = time.perf_counter(), time.process_time()
    plan = build_plan(settings)
    plan_seconds, plan_cpu = time.perf_counter() - t0, time.process_time() - c0
    provider = make_provider(settings)
    layout = settings.layout
    answers: dict[str, tuple[str, int, str]] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for doc in plan.documents:
        for batch in planned_batches(layout, doc.subject, doc.document) if doc.batch_ids else []:
            result = categorise_batch(batch, provider, settings.max_retries)
            for key, item in result.items.items():
                if item.status not in ("ok", "repaired"):
                    raise SystemExit(f"{doc.subject}/{doc.filename}: flag {key} {item.status}: {item.error}")
                answers[key] = (item.error_category, int(item.confidence_score or 0), item.reasoning)
    timing = {
        "plan_seconds": plan_seconds,
        "plan_cpu_seconds": plan_cpu,
        "categorise_seconds": time.perf_counter() - t0,
        "categorise_cpu_seconds": time.process_time() - c0,
        "batches": plan.batches,
        "documents": len(plan.documents),
    }
    return answers, timing


def join(
    issues: list[Issue], answers: dict[str, tuple[str, int, str]], labels: dict[tuple, str]
) -> list[Judged]:
    judged: list[Judged] = []
    seen: Counter = Counter()
    for issue in issues:
        ident = label_identity(issue.subject, issue.filename, issue.issue, issue.context)
        occurrence = seen[ident]
        seen[ident] += 1
        gold = labels.get((*ident, occurrence))
        answer = answers.get(issue.key)
        if gold is not None and answer is not None:
            judged.append(Judged(issue, answer[0], answer[1], answer[2], gold))
    return judged


def ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def measure(rows: list[Judged]) -> dict[str, float | int]:
    """Agreement, recall and precision of real errors, and the confident dismissals."""
    kept = sum(1 for r in rows if r.real and r.gold_real)
    dismissed = [r for r in rows if not r.real and r.confidence >= CONFIDENT]
    return {
        "flags": len(rows),
        "agreement": ratio(sum(r.category == r.gold for r in rows), len(rows)),
        "baseline_false_positive": ratio(sum(r.gold == "FALSE_POSITIVE" for r in rows), len(rows)),
        "real_errors": sum(r.gold_real for r in rows),
        "predicted_real": sum(r.real for r in rows),
        "recall_real": ratio(kept, sum(r.gold_real for r in rows)),
        "precision_real": ratio(kept, sum(r.real for r in rows)),
        "confident_dismissals": len(dismissed),
        "confident_dismissals_right": ratio(sum(not r.gold_real for r in dismissed), len(dismissed)),
        "confident_dismissals_coverage": ratio(len(dismissed), len(rows)),
    }


def confidence_table(rows: list[Judged]) -> dict[str, dict[str, float | int]]:
    """Per confidence band: how often the category agrees, and how often real/not real does."""
    table = {}
    for lo, hi in BUCKETS:
        sel = [r for r in rows if lo <= r.confidence <= hi]
        table[f"{lo}-{hi}"] = {
            "count": len(sel),
            "agreement": ratio(sum(r.category == r.gold for r in sel), len(sel)),
            "real_or_not_right": ratio(sum(r.real == r.gold_real for r in sel), len(sel)),
        }
    return table


def per_category(rows: list[Judged]) -> dict[str, dict[str, float | int]]:
    out = {}
    for name in CATEGORY_NAMES:
        tp = sum(1 for r in rows if r.category == r.gold == name)
        pred = sum(1 for r in rows if r.category == name)
        supp = sum(1 for r in rows if r.gold == name)
        out[name] = {
            "precision": ratio(tp, pred),
            "recall": ratio(tp, supp),
            "predicted": pred,
            "support": supp,
        }
    return out


def confusion(rows: list[Judged]) -> dict[str, dict[str, int]]:
    """Offline category -> reference category -> flags, for the categories either side uses."""
    used = [name for name in CATEGORY_NAMES if any(name in (r.category, r.gold) for r in rows)]
    counts = Counter((r.category, r.gold) for r in rows)
    return {pred: {gold: counts[(pred, gold)] for gold in used} for pred in used}


def print_confusion(title: str, table: dict[str, dict[str, int]]) -> None:
    short = {name: "".join(word[0] for word in name.split("_")) for name in table}
    print(f"\n{title:38s} " + " ".join(f"{short[g]:>5s}" for g in table))
    for pred, row in table.items():
        print(f"{pred:38s} " + " ".join(f"{n:5d}" for n in row.values()))


def print_report(numbers: dict) -> None:
    t = numbers["timing"]
    print(
        f"flags labelled: {numbers['all']['flags']}  documents: {t['documents']}  batches: {t['batches']}\n"
        f"plan: {t['plan_seconds']:.2f} s wall ({t['plan_cpu_seconds']:.2f} s CPU)  "
        f"categorise: {t['categorise_seconds']:.2f} s wall ({t['categorise_cpu_seconds']:.2f} s CPU)"
    )
    print(f"split (seed {numbers['seed']}):")
    print(f"  dev:      {', '.join(numbers['dev_subjects'])}")
    print(f"  held-out: {', '.join(numbers['held_out_subjects'])}")
    head = ("agree", "FP-only", "recall", "prec", "conf.dis", "right", "cover", "n")
    print(f"\n{'':10s} " + " ".join(f"{h:>8s}" for h in head))
    for name in ("all", "dev", "held_out"):
        m = numbers[name]
        cells = (
            f"{m['agreement']:8.1%}",
            f"{m['baseline_false_positive']:8.1%}",
            f"{m['recall_real']:8.1%}",
            f"{m['precision_real']:8.1%}",
            f"{m['confident_dismissals']:8d}",
            f"{m['confident_dismissals_right']:8.1%}",
            f"{m['confident_dismissals_coverage']:8.1%}",
            f"{m['flags']:8d}",
        )
        print(f"{name:10s} " + " ".join(cells))
    for name in ("all", "held_out"):
        print(f"\nconfidence ({name}) {'count':>7s} {'agree':>7s} {'real?':>7s}")
        for band, b in numbers[f"confidence_{name}"].items():
            print(f"{band:18s} {b['count']:7d} {b['agreement']:7.1%} {b['real_or_not_right']:7.1%}")
    print_confusion("confusion (dev): offline \\ reference", numbers["confusion_dev"])
    print(f"\n{'category (all)':40s} {'prec':>6s} {'recall':>6s} {'pred':>5s} {'supp':>5s}")
    for name, c in numbers["per_category"].items():
        print(f"{name:40s} {c['precision']:6.1%} {c['recall']:6.1%} {c['predicted']:5d} {c['support']:5d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpus"))
    parser.add_argument("--labels", default="labels/gemini.csv", help="relative to the corpus")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the subject split")
    parser.add_argument("--json", dest="json_path", default=None, help="write the numbers here")
    parser.add_argument("--errors", type=int, default=0, help="print this many disagreements")
    parser.add_argument("--half", choices=("dev", "held_out", "all"), default="dev", help="for --errors")
    parser.add_argument("--data-dir", default=None, help="planning folder (default: a temporary one)")
    args = parser.parse_args(argv)

    corpus = Path(args.corpus)
    documents_dir = corpus / "Documents"
    labels_path = corpus / args.labels
    if not (documents_dir / "language-check-report.csv").is_file() or not labels_path.is_file():
        print(f"corpus not found at {corpus}, skipping")
        return 0

    with tempfile.TemporaryDirectory(prefix="evaluate-offline-") as tmp:
        answers, timing = run_offline(documents_dir, Path(args.data_dir or tmp))
    issues = load_report(documents_dir / "language-check-report.csv").issues
    rows = join(issues, answers, load_labels(labels_path))
    dev, held_out = split_subjects(sorted({i.subject for i in issues}), args.seed)
    halves = {"all": rows, "dev": [r for r in rows if r.issue.subject in dev]}
    halves["held_out"] = [r for r in rows if r.issue.subject in held_out]
    numbers = {
        "seed": args.seed,
        "dev_subjects": dev,
        "held_out_subjects": held_out,
        **{name: measure(sel) for name, sel in halves.items()},
        "confidence_all": confidence_table(rows),
        "confidence_held_out": confidence_table(halves["held_out"]),
        "per_category": per_category(rows),
        "confusion_dev": confusion(halves["dev"]),
        "timing": timing,
    }
    print_report(numbers)

    if args.errors:
        print(f"\nDisagreements on real/not real ({args.half}, sample):")
        for r in [r for r in halves[args.half] if r.real != r.gold_real][: args.errors]:
            i = r.issue
            print(f"- [{i.rule_id}/{i.type}] {i.issue!r} -> {i.suggestions[:40]!r}")
            print(f"    offline={r.category}({r.confidence}) gold={r.gold} :: {i.context}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(numbers, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
