#!/usr/bin/env python
"""How far the spelling word lists agree with Gemini 2.5 Flash's labels, per confidence threshold.

Usage::

    python benchmarks/evaluate_feedback.py COMBINED_CSV [--labels ../shared/corpus/labels/gemini.csv]

COMBINED_CSV is the combined report of a run over the reference corpus (for example
``Documents/combined-report.csv`` after ``benchmarks/bench_report.py`` or any full run). For
each threshold it prints how many words the lists would hold over all subjects and the share
of them whose every spelling flag (same subject, any capitalisation) Gemini also labelled
``FALSE_POSITIVE``. The labels are one model's opinion, so this is agreement, not accuracy.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llm_categoriser.results_view.flags import Flag, load_flags  # noqa: E402
from llm_categoriser.results_view.lt_feedback import (  # noqa: E402
    MIN_RULE_SHARE,
    rule_counts,
    rules_to_disable,
    spelling_words,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("combined", type=Path)
    parser.add_argument("--labels", type=Path, default=REPO.parent / "shared/corpus/labels/gemini.csv")
    parser.add_argument("--thresholds", default="50,60,70,80,90")
    args = parser.parse_args()
    if not args.labels.exists():
        print(f"labels not found at {args.labels}; nothing measured")
        return 0
    labels: dict[tuple[str, str], list[str]] = defaultdict(list)
    by_rule: dict[str, list[str]] = defaultdict(list)
    with open(args.labels, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            by_rule[row["Rule ID"]].append(row["error_category"])
            if row["Type"] == "misspelling":
                labels[(row["Subject"], row["Issue"].casefold())].append(row["error_category"])
    by_subject: dict[str, list[Flag]] = defaultdict(list)
    all_flags = load_flags(args.combined)
    for flag in all_flags:
        by_subject[flag.subject].append(flag)
    print("threshold  words  labelled  Gemini agrees")
    for threshold in (int(t) for t in args.thresholds.split(",")):
        words = labelled = agree = 0
        for subject, flags in by_subject.items():
            for word in spelling_words(flags, threshold):
                words += 1
                found = labels.get((subject, word.casefold()))
                if found:
                    labelled += 1
                    agree += all(c == "FALSE_POSITIVE" for c in found)
        share = f"{agree / labelled:.1%}" if labelled else "–"
        print(f"{threshold:>9}  {words:>5}  {labelled:>8}  {share:>13}")
    listed = rules_to_disable(rule_counts(all_flags))
    shares = [
        by_rule[r.rule_id].count("FALSE_POSITIVE") / len(by_rule[r.rule_id])
        for r in listed
        if by_rule[r.rule_id]
    ]
    agreeing = sum(s >= MIN_RULE_SHARE for s in shares)
    print(
        f"rules to disable: {len(listed)}; Gemini labels {agreeing} of them FALSE_POSITIVE at "
        f">= {MIN_RULE_SHARE:.0%} too, {sum(s >= 0.75 for s in shares)} at >= 75%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
