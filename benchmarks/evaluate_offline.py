#!/usr/bin/env python
"""Measure the offline heuristic categoriser against the reference labels of the real corpus.

Usage::

    python benchmarks/evaluate_offline.py [--corpus ../shared/corpus] [--json PATH]

The corpus (``Documents/language-check-report.csv``, ``Documents/<Subject>/markdown/*.md`` and
``labels/gemini.csv``) is read-only reference data that lives outside the repository; when it is
absent the script says so and exits 0.  Subjects are split by their sorted position: even indices
are the development half, odd indices the held-out half.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from llm_categoriser.categories import CATEGORY_NAMES  # noqa: E402
from llm_categoriser.models import Issue  # noqa: E402
from llm_categoriser.providers.offline.rules import classify, document_hints  # noqa: E402

PAGE_MARKER = re.compile(r"^\{(\d+)\}-+\s*$", re.MULTILINE)
BUCKETS: tuple[tuple[int, int], ...] = ((0, 49), (50, 59), (60, 69), (70, 79), (80, 89), (90, 100))


def split_pages(text: str) -> dict[int | None, str]:
    """Page number -> Markdown of that page (from its marker to the next); None for the preamble."""
    pages: dict[int | None, str] = {}
    markers = list(PAGE_MARKER.finditer(text))
    start = markers[0].start() if markers else len(text)
    if text[:start].strip():
        pages[None] = text[:start]
    for i, m in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        number = int(m.group(1))
        pages[number] = pages.get(number, "") + text[m.start() : end]
    return pages


def identity(subject: str, filename: str, issue: str, context: str) -> tuple[str, str, str, str]:
    return (subject, filename, issue, context)


def load_issues(report: Path) -> list[Issue]:
    issues: list[Issue] = []
    seen: Counter = Counter()
    with report.open(newline="", encoding="utf-8") as fh:
        for row_number, rec in enumerate(csv.DictReader(fh), start=1):
            ident = identity(rec["Subject"], rec["Filename"], rec["Issue"], rec["Highlighted Context"])
            occurrence = seen[ident]
            seen[ident] += 1
            page_raw = (rec.get("Page") or "").strip()
            issues.append(
                Issue(
                    subject=rec["Subject"],
                    filename=rec["Filename"],
                    page=int(page_raw) if page_raw.lstrip("-").isdigit() else None,
                    rule_id=rec.get("Rule ID") or "",
                    type=rec.get("Type") or "",
                    issue=rec.get("Issue") or "",
                    message=rec.get("Message") or "",
                    suggestions=rec.get("Suggestions") or "",
                    context=rec.get("Highlighted Context") or "",
                    pass_code=rec.get("Pass Code") or "",
                    row=row_number,
                    occurrence=occurrence,
                    key="",
                )
            )
    return issues


def load_labels(path: Path) -> dict[tuple, str]:
    labels: dict[tuple, str] = {}
    seen: Counter = Counter()
    with path.open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            ident = identity(rec["Subject"], rec["Filename"], rec["Issue"], rec["Highlighted Context"])
            labels[(*ident, seen[ident])] = rec["error_category"].strip()
            seen[ident] += 1
    return labels


def agreement(pairs: list[tuple[str, str]]) -> float:
    return sum(p == g for p, g in pairs) / len(pairs) if pairs else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpus"))
    parser.add_argument("--labels", default="labels/gemini.csv", help="relative to the corpus")
    parser.add_argument("--json", dest="json_path", default=None, help="write the numbers here")
    parser.add_argument("--errors", type=int, default=0, help="print this many disagreements")
    parser.add_argument(
        "--half",
        choices=("dev", "held-out", "all"),
        default="all",
        help="which half the --errors sample is drawn from",
    )
    args = parser.parse_args(argv)

    corpus = Path(args.corpus)
    report = corpus / "Documents" / "language-check-report.csv"
    labels_path = corpus / args.labels
    if not report.is_file() or not labels_path.is_file():
        print(f"corpus not found at {corpus}, skipping")
        return 0

    issues = load_issues(report)
    labels = load_labels(labels_path)
    subjects = sorted({i.subject for i in issues})
    dev_subjects = set(subjects[0::2])

    documents: dict[tuple[str, str], str] = {}
    pages: dict[tuple[str, str], dict[int | None, str]] = {}
    for issue in issues:
        doc_key = (issue.subject, issue.filename)
        if doc_key in documents:
            continue
        path = corpus / "Documents" / issue.subject / "markdown" / issue.filename
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        documents[doc_key] = text
        pages[doc_key] = split_pages(text)

    t0, c0 = time.perf_counter(), time.process_time()
    hints = [document_hints(i, documents[(i.subject, i.filename)]) for i in issues]
    hints_seconds = time.perf_counter() - t0
    hints_cpu_seconds = time.process_time() - c0
    for h in hints:
        json.dumps(h)

    t0 = time.perf_counter()
    results = []
    for issue, h in zip(issues, hints, strict=True):
        page_text = pages[(issue.subject, issue.filename)].get(issue.page)
        results.append(classify(issue, page_text, h))
    classify_seconds = time.perf_counter() - t0

    joined = []  # (issue, predicted, confidence, reason, gold)
    for issue, (category, confidence, reason) in zip(issues, results, strict=True):
        ident = identity(issue.subject, issue.filename, issue.issue, issue.context)
        gold = labels.get((*ident, issue.occurrence))
        if gold is not None:
            joined.append((issue, str(category), confidence, reason, gold))

    def pairs_for(pred) -> list[tuple[str, str]]:
        return [(p, g) for i, p, _c, _r, g in joined if pred(i)]

    all_pairs = pairs_for(lambda i: True)
    dev_pairs = pairs_for(lambda i: i.subject in dev_subjects)
    held_pairs = pairs_for(lambda i: i.subject not in dev_subjects)

    def baseline_of(pairs: list[tuple[str, str]]) -> float:
        return agreement([("FALSE_POSITIVE", g) for _p, g in pairs])

    baseline = baseline_of(all_pairs)

    print(f"issues: {len(issues)}  labelled: {len(joined)}  documents: {len(documents)}")
    print(
        f"hints time: {hints_seconds:.3f} s wall, {hints_cpu_seconds:.3f} s CPU"
        f"  classify time: {classify_seconds:.3f} s"
    )
    print(f"dev subjects:      {', '.join(sorted(dev_subjects))}")
    print(f"held-out subjects: {', '.join(s for s in subjects if s not in dev_subjects)}")
    print(f"{'':20s} {'agreement':>9s} {'FP-only':>8s} {'n':>6s}")
    for name, pairs in (("overall", all_pairs), ("dev", dev_pairs), ("held-out", held_pairs)):
        print(f"{name:20s} {agreement(pairs):9.1%} {baseline_of(pairs):8.1%} {len(pairs):6d}")
    print(f"always FALSE_POSITIVE baseline (overall): {baseline:.1%}")

    per_category = {}
    print(f"\n{'category':40s} {'prec':>6s} {'recall':>6s} {'pred':>5s} {'supp':>5s}")
    for name in CATEGORY_NAMES:
        tp = sum(1 for p, g in all_pairs if p == g == name)
        pred = sum(1 for p, _g in all_pairs if p == name)
        supp = sum(1 for _p, g in all_pairs if g == name)
        prec = tp / pred if pred else 0.0
        rec = tp / supp if supp else 0.0
        per_category[name] = {"precision": prec, "recall": rec, "predicted": pred, "support": supp}
        print(f"{name:40s} {prec:6.1%} {rec:6.1%} {pred:5d} {supp:5d}")

    per_bucket = {}
    print(f"\n{'confidence':12s} {'agree':>6s} {'count':>6s}")
    for lo, hi in BUCKETS:
        sel = [(p, g) for _i, p, c, _r, g in joined if lo <= c <= hi]
        per_bucket[f"{lo}-{hi}"] = {"agreement": agreement(sel), "count": len(sel)}
        print(f"{lo:3d}-{hi:<8d} {agreement(sel):6.1%} {len(sel):6d}")

    if args.errors:
        print("\nDisagreements (sample):")
        shown = 0
        for issue, p, c, _reason, g in joined:
            in_dev = issue.subject in dev_subjects
            if (args.half == "dev" and not in_dev) or (args.half == "held-out" and in_dev):
                continue
            if p != g:
                print(f"- [{issue.rule_id}] {issue.issue!r} pred={p}({c}) gold={g} :: {issue.context}")
                shown += 1
                if shown >= args.errors:
                    break

    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(
                {
                    "overall": agreement(all_pairs),
                    "dev": agreement(dev_pairs),
                    "held_out": agreement(held_pairs),
                    "baseline_false_positive": baseline,
                    "baseline_false_positive_dev": baseline_of(dev_pairs),
                    "baseline_false_positive_held_out": baseline_of(held_pairs),
                    "labelled": len(joined),
                    "hints_seconds": hints_seconds,
                    "hints_cpu_seconds": hints_cpu_seconds,
                    "classify_seconds": classify_seconds,
                    "per_category": per_category,
                    "per_bucket": per_bucket,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
