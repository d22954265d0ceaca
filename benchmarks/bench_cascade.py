#!/usr/bin/env python
"""The cascade on the reference corpus, with Gemini's labels standing in for the model's answers.

Usage::

    python benchmarks/bench_cascade.py [--corpus ../shared/corpus] [--seeds 0 1 2] [--json PATH]

For each seed and each split (half of the documents, seeded; half of the subjects, seeded): train
on the labelled flags of one half exactly as ``train`` does (cross-validated thresholds at
``--min-agreement``), let the classifier answer the flags of the other half, and report the
share answered locally, their agreement with the labels, and the requests and estimated cost
of the other half with and without the cascade. The flags are read by the product's report
loader and evidence code; requests are the batches the product's planner makes
(``plan.build_plan`` on the flags of that half), tokens a quarter of the characters of the
prompts it renders, costed at the summary's input price.
The corpus is read-only reference data outside the repository; when it is absent the script
says so and exits 0.
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from llm_categoriser.cascade.evidence import report_evidence  # noqa: E402
from llm_categoriser.cascade.features import ReportStats, flag_features  # noqa: E402
from llm_categoriser.cascade.memory import memory_key  # noqa: E402
from llm_categoriser.cascade.training import Example, TrainSettings, feature_matrix, train  # noqa: E402
from llm_categoriser.layout import Layout  # noqa: E402
from llm_categoriser.lt_report import LoadedReport, issue_key, load_report  # noqa: E402
from llm_categoriser.models import Issue  # noqa: E402
from llm_categoriser.plan import build_plan  # noqa: E402
from llm_categoriser.settings import resolve  # noqa: E402
from llm_categoriser.spending import estimate_plan  # noqa: E402


def load_labels(path: Path) -> dict[str, str]:
    """Flag key (the product's ``issue_key``) -> the labelled category."""
    labels: dict[str, str] = {}
    seen: Counter[tuple[str, ...]] = Counter()
    with path.open(newline="", encoding="utf-8") as handle:
        for rec in csv.DictReader(handle):
            ident = (
                rec["Subject"],
                rec["Filename"],
                rec["Rule ID"],
                rec["Issue"],
                rec["Highlighted Context"],
            )
            labels[issue_key(*ident, seen[ident])] = rec["error_category"].strip()
            seen[ident] += 1
    return labels


def split(names: list[str], seed: int) -> set[str]:
    """A seeded half of ``names`` (the training half)."""
    shuffled = sorted(names)
    random.Random(seed).shuffle(shuffled)
    return set(shuffled[: len(shuffled) // 2])


def plain_and_cascade_requests(
    report: LoadedReport, corpus: Path, test_keys: set[str], cascaded: set[str], tmp: Path
) -> dict[str, Any]:
    """Requests and prompt tokens of the held-out flags: all of them, and only the undecided ones.

    The product's planner plans the held-out flags (and then only those the classifier left
    undecided) for the gemini provider, so batches and prompts are exactly what a run would send.
    """
    out: dict[str, Any] = {}
    for name, keep in (("plain", test_keys), ("cascade", test_keys - cascaded)):
        subset = LoadedReport(path=report.path, issues=[i for i in report.issues if i.key in keep])
        settings = resolve(
            {
                "documents_dir": str(corpus / "Documents"),
                "report": str(report.path),
                "data_dir": str(tmp / name),
                "provider": "gemini",
            }
        )
        plan = build_plan(settings, report=subset)
        estimate = estimate_plan(plan, settings)
        out[name] = {
            "flags": len(subset.issues),
            "requests": estimate.requests_to_send,
            "input_tokens": estimate.usage.input_tokens,
            "output_tokens": estimate.usage.output_tokens,
            "cost_usd": float(estimate.cost_usd or 0),
            "model": estimate.model,
        }
    return out


def run_split(
    report: LoadedReport,
    kind: str,
    seed: int,
    issues: list[Issue],
    features: dict[str, dict[str, float]],
    labels: dict[str, str],
    settings: TrainSettings,
    corpus: Path,
    tmp: Path,
) -> dict[str, Any]:
    if kind == "document":
        train_side = split(sorted({f"{i.subject}/{i.filename}" for i in issues}), seed)

        def side(i: Issue) -> bool:
            return f"{i.subject}/{i.filename}" in train_side
    else:
        train_side = split(sorted({i.subject for i in issues}), seed)

        def side(i: Issue) -> bool:
            return i.subject in train_side

    labelled = [i for i in issues if i.key in labels]
    train_issues = [i for i in labelled if side(i)]
    test_issues = [i for i in labelled if not side(i)]
    examples = [
        Example(i.key, f"{i.subject}/{i.filename}", features[i.key], labels[i.key], memory_key(i))
        for i in train_issues
    ]
    started = time.perf_counter()
    model = train(examples, settings.model_copy(update={"seed": seed}))
    train_seconds = time.perf_counter() - started
    predictions = model.predict(
        feature_matrix([features[i.key] for i in test_issues], settings.n_features),
        [memory_key(i) for i in test_issues],
    )
    answered = [(i, p) for i, p in zip(test_issues, predictions, strict=True) if p.answered]
    agreed = sum(p.category == labels[i.key] for i, p in answered)
    per_category = Counter(p.category for _i, p in answered)
    per_category_agreed = Counter(p.category for i, p in answered if p.category == labels[i.key])
    per_segment = Counter(p.segment for _i, p in answered)
    per_segment_agreed = Counter(p.segment for i, p in answered if p.category == labels[i.key])
    all_test_keys = {i.key for i in issues if not side(i)}
    cost = plain_and_cascade_requests(
        report, corpus, all_test_keys, {i.key for i, _p in answered}, tmp / f"{kind}-{seed}"
    )
    return {
        "split": kind,
        "seed": seed,
        "train_flags": len(train_issues),
        "test_flags": len(test_issues),
        "train_seconds": train_seconds,
        "expected_coverage": model.info.expected_coverage,
        "expected_agreement": model.info.expected_agreement,
        "answered": len(answered),
        "answered_share": len(answered) / len(test_issues),
        "agreement": agreed / len(answered) if answered else None,
        "agreed": agreed,
        "per_category": {c: [per_category[c], per_category_agreed[c]] for c in sorted(per_category)},
        "per_segment": {g: [per_segment[g], per_segment_agreed[g]] for g in sorted(per_segment)},
        "requests": cost,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpus"))
    parser.add_argument("--labels", default="labels/gemini.csv", help="relative to the corpus")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--min-agreement", type=float, default=TrainSettings().min_agreement)
    parser.add_argument("--regularisation", type=float, default=TrainSettings().regularisation)
    parser.add_argument("--json", dest="json_path", default=None, help="write the numbers here")
    parser.add_argument("--tmp", default=None, help="folder for the planning files (default: a temp dir)")
    args = parser.parse_args(argv)

    corpus = Path(args.corpus)
    report_path = corpus / "Documents" / "language-check-report.csv"
    labels_path = corpus / args.labels
    if not report_path.is_file() or not labels_path.is_file():
        print(f"corpus not found at {corpus}, skipping")
        return 0
    started = time.perf_counter()
    report = load_report(report_path)
    labels = load_labels(labels_path)
    stats = ReportStats.from_issues(report.issues)
    evidence = report_evidence(report.issues, Layout(str(corpus / "Documents"), "data"))
    features = {i.key: flag_features(evidence[i.key], stats) for i in report.issues}
    prepare_seconds = time.perf_counter() - started
    labelled = sum(i.key in labels for i in report.issues)
    print(
        f"flags: {len(report.issues)}, labelled: {labelled}, evidence and features: {prepare_seconds:.1f} s"
    )
    settings = TrainSettings(min_agreement=args.min_agreement, regularisation=args.regularisation)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.tmp or scratch)
        for kind in ("document", "subject"):
            for seed in args.seeds:
                r = run_split(report, kind, seed, report.issues, features, labels, settings, corpus, tmp)
                results.append(r)
                plain, cascade = r["requests"]["plain"], r["requests"]["cascade"]
                print(
                    f"{kind:8s} seed {seed}: answered locally {r['answered_share']:.1%} "
                    f"({r['answered']}/{r['test_flags']}), agreement "
                    f"{(r['agreement'] or 0):.1%}; expected {r['expected_coverage']:.1%} at "
                    f"{(r['expected_agreement'] or 0):.1%}; requests {plain['requests']} -> "
                    f"{cascade['requests']} ({1 - cascade['requests'] / plain['requests']:.1%} saved), "
                    f"input tokens {plain['input_tokens']} -> {cascade['input_tokens']} "
                    f"({1 - cascade['input_tokens'] / plain['input_tokens']:.1%} saved, "
                    f"${plain['cost_usd']:.3f} -> ${cascade['cost_usd']:.3f}); "
                    f"trained in {r['train_seconds']:.1f} s"
                )
                print(f"    per category (answered, agreed): {r['per_category']}")
                print(f"    per memory segment (answered, agreed): {r['per_segment']}")
            mine = [r for r in results if r["split"] == kind]
            answered = sum(r["answered"] for r in mine)
            flags = sum(r["test_flags"] for r in mine)
            plain = {n: sum(r["requests"]["plain"][n] for r in mine) for n in ("requests", "cost_usd")}
            left = {n: sum(r["requests"]["cascade"][n] for r in mine) for n in ("requests", "cost_usd")}
            print(
                f"{kind:8s} all seeds: answered locally {answered / flags:.1%} ({answered}/{flags}), "
                f"agreement {sum(r['agreed'] for r in mine) / max(1, answered):.1%}; requests "
                f"{plain['requests']} -> {left['requests']} ({1 - left['requests'] / plain['requests']:.1%} "
                f"saved), cost ${plain['cost_usd']:.3f} -> ${left['cost_usd']:.3f} "
                f"({1 - left['cost_usd'] / plain['cost_usd']:.1%} saved)"
            )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
