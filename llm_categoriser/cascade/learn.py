"""``train``: a cascade model from the model answers kept in ``<data_dir>/cache/``.

Only answers of a real model are learnt from: a provider says whether it is one
(``providers.answers_are_learnable``), so the cascade's own answers and the offline rules'
never train it. A flag answered more than once (another model, another prompt) counts with
its newest answer. The flags are those of the current report, matched by their stable key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..layout import Layout
from ..lt_report import load_report
from ..models import Issue
from ..providers import answers_are_learnable
from ..records import BatchResult, RecordError, read_record
from ..settings import Settings
from .evidence import report_evidence
from .features import ReportStats, flag_features
from .memory import SEGMENTS, memory_key
from .model import CascadeModel, save_model
from .training import Example, TrainingError, TrainSettings, train

log = logging.getLogger(__name__)
SEGMENT_NAMES = {"unseen": "never", "seen_once": "once", "seen_more": "more"}


def model_path(settings: Settings) -> Path:
    return Path(settings.layout.cascade_model)


def train_settings(settings: Settings) -> TrainSettings:
    return TrainSettings(min_agreement=settings.cascade_min_agreement, seed=settings.cascade_seed)


@dataclass
class CachedAnswers:
    answers: dict[str, str]  # flag key -> category
    files: int
    skipped_providers: dict[str, int]


def cached_model_answers(layout: Layout) -> CachedAnswers:
    """Flag key -> the newest category a real model gave it, from every cached batch answer."""
    folder = Path(layout.cache_dir)
    found: dict[str, tuple[int, str, str]] = {}
    skipped: dict[str, int] = {}
    files = 0
    for path in sorted(folder.glob("*/" + layout.file_glob("cached_answer"))):
        try:
            result = read_record(path, BatchResult)
            stamp = path.stat().st_mtime_ns
        except (OSError, RecordError) as exc:
            log.warning("%s is not a readable batch answer (%s); skipped", path, exc)
            continue
        files += 1
        if not answers_are_learnable(result.provider):
            skipped[result.provider] = skipped.get(result.provider, 0) + len(result.items)
            continue
        for key, item in result.items.items():
            if item.status not in ("ok", "repaired") or not item.error_category:
                continue
            candidate = (stamp, result.fingerprint, item.error_category)
            if key not in found or candidate[:2] > found[key][:2]:
                found[key] = candidate
    return CachedAnswers({k: v[2] for k, v in found.items()}, files, skipped)


def examples_for(issues: Iterable[Issue], answers: dict[str, str], layout: Layout) -> list[Example]:
    """Training examples for the flags of ``issues`` that have an answer."""
    issues = list(issues)
    stats = ReportStats.from_issues(issues)
    answered = [i for i in issues if i.key in answers]
    evidence = report_evidence(answered, layout)
    return [
        Example(
            key=issue.key,
            document=f"{issue.subject}/{issue.filename}",
            features=flag_features(evidence[issue.key], stats),
            category=answers[issue.key],
            memory_key=memory_key(issue),
        )
        for issue in answered
    ]


def train_from_cache(settings: Settings) -> tuple[CascadeModel, CachedAnswers, Path]:
    """Train on the cached model answers to the flags of the report; save; return what was done."""
    cached = cached_model_answers(settings.layout)
    report = load_report(settings.report)
    examples = examples_for(report.issues, cached.answers, settings.layout)
    if not examples:
        learnt_from = "; ".join(f"{n} answer(s) of {p}" for p, n in sorted(cached.skipped_providers.items()))
        raise TrainingError(
            f"no model answers to learn from in {settings.layout.cache_dir} for the flags of "
            f"{settings.report} ({cached.files} cached batch answer(s)"
            f"{'; not learnt from: ' + learnt_from if learnt_from else ''}). Run the pipeline with a "
            f"model provider (e.g. --config provider=gemini) first."
        )
    model = train(examples, train_settings(settings))
    path = model_path(settings)
    save_model(path, model)
    return model, cached, path


def describe(model: CascadeModel) -> str:
    """What ``train`` prints: the expected coverage and agreement, per category."""
    info = model.info
    lines = [
        f"Trained on {info.training_answers} model answer(s) from {info.training_documents} document(s); "
        f"model {info.fingerprint[:12]}.",
        f"Expected (cross-validation by document): {info.expected_coverage:.0%} of flags answered locally"
        + (
            f", agreeing with the model on {info.expected_agreement:.1%} of them."
            if info.expected_agreement is not None
            else "; no category reached the agreement target, so none will be."
        ),
        "  (word: the flag's rule and word answered by the model in other documents never, once, or more)",
        f"  {'word':10s} {'category':38s} {'threshold':>9s} {'held out':>8s} {'covered':>8s} "
        f"{'agreement':>9s}",
    ]
    for segment in SEGMENTS:
        for category, cal in sorted(info.calibration[segment].items()):
            if not cal.held_out:
                continue
            threshold = f"{cal.threshold:.3f}" if cal.threshold is not None else "never"
            agreement = f"{cal.agreed / cal.covered:.1%}" if cal.covered else "-"
            lines.append(
                f"  {SEGMENT_NAMES[segment]:10s} {category:38s} {threshold:>9s} {cal.held_out:8d} "
                f"{cal.covered:8d} {agreement:>9s}"
            )
    return "\n".join(lines)


__all__ = [
    "CachedAnswers",
    "TrainingError",
    "cached_model_answers",
    "describe",
    "examples_for",
    "model_path",
    "train_from_cache",
]
