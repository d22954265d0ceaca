"""At planning time: which flags the trained classifier answers, and which of those are audited.

With ``cascade: true`` the planner asks ``decide`` about every selected flag before it packs the
batches (docs/DESIGN.md §30): a flag the classifier answers at or above its category's threshold
is answered locally (provider ``cascade``) and left out of the batches sent to the provider,
unless it is one of the ``cascade_audit`` flags drawn (seeded) to be sent as well. The decisions
of a document are a planning file (``cascade.json``) that holds the model's fingerprint, so a new
model rewrites exactly the files of the documents whose decisions it changes, and a rerun after
``train`` re-decides those flags and re-sends the batches that change.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..layout import Layout
from ..lt_report import LoadedReport
from ..models import Issue
from ..records import BatchResult, CascadeAnswer, CascadeSpec, FlagResult, read_record
from ..settings import Settings
from .evidence import document_evidence, read_document
from .features import ReportStats, flag_features
from .learn import model_path
from .memory import memory_key
from .model import CascadeModel, CascadeModelError, load_model
from .training import feature_matrix

log = logging.getLogger(__name__)
STAGE = "cascade"  # the provider column of the flags answered locally
BATCH_ID = "cascade"  # the batch id of a document's locally answered flags


@dataclass
class Decisions:
    """The cascade's decisions for the selected flags of a run (empty when it is off)."""

    model: CascadeModel | None = None
    answers: dict[str, CascadeAnswer] = field(default_factory=dict)
    problem: str = ""
    redecided: int = 0  # flags whose decision differs from the previous plan's
    planned: int = 0  # flags answered locally in the documents planned
    audited: int = 0

    def sent(self, issues: Iterable[Issue]) -> list[Issue]:
        """The flags that still go to the provider: not answered locally, or audited."""
        return [i for i in issues if i.key not in self.answers or self.answers[i.key].audit]

    def spec(self, issues: Iterable[Issue]) -> CascadeSpec | None:
        mine = [self.answers[i.key] for i in issues if i.key in self.answers]
        if not mine or self.model is None:
            return None
        info = self.model.info
        return CascadeSpec(model=info.fingerprint, trained_on=info.training_answers, answers=mine)

    def write(self, layout: Layout, subject: str, document: str, issues: list[Issue]) -> tuple[int, bool]:
        """Write (or remove) the document's ``cascade.json``; return (flags answered, written)."""
        from ..records import write_record_if_changed

        path = Path(layout.cascade_spec(subject, document))
        spec = self.spec(issues)
        before = _previous(path)
        after = {a.key: (spec.model, a.category, a.audit) for a in spec.answers} if spec else {}
        self.redecided += sum(1 for key, value in after.items() if before.get(key) != value)
        self.redecided += sum(1 for key in before if key not in after)
        if spec is not None:
            self.planned += len(spec.answers)
            self.audited += sum(a.audit for a in spec.answers)
        if spec is None:
            if path.exists():
                path.unlink()
                return 0, True
            return 0, False
        return len(spec.answers), write_record_if_changed(path, spec)

    def plan_line(self, flags: int) -> str:
        if self.model is None:  # off, or no model: the planner's warning says why
            return ""
        return (
            f"Cascade: model {self.model.fingerprint[:12]} answers {self.planned} of {flags} flag(s) "
            f"locally ({self.redecided} decided anew since the last plan"
            + (f"; {self.audited} also sent to the provider for the audit" if self.audited else "")
            + ")"
        )


def _previous(path: Path) -> dict[str, tuple[str, str, bool]]:
    try:
        spec = read_record(path, CascadeSpec)
    except (OSError, ValueError):
        return {}
    return {a.key: (spec.model, a.category, a.audit) for a in spec.answers}


def load_for_planning(settings: Settings) -> tuple[CascadeModel | None, str]:
    """The model, or None and why not (a missing model is a warning: every flag is sent)."""
    if not settings.cascade:
        return None, ""
    try:
        return load_model(model_path(settings)), ""
    except CascadeModelError as exc:
        return None, f"{exc}; every flag goes to the provider meanwhile"


def decide(
    settings: Settings, report: LoadedReport, documents: Mapping[tuple[str, str], list[Issue]]
) -> Decisions:
    """Decide every flag of ``documents`` ((subject, filename) -> flags); empty when off."""
    model, problem = load_for_planning(settings)
    decisions = Decisions(model=model, problem=problem)
    if model is None:
        return decisions
    stats = ReportStats.from_issues(report.issues)
    keys: list[str] = []
    memory: list[int] = []
    features: list[dict[str, float]] = []
    for (subject, filename), issues in documents.items():
        text = read_document(settings.layout, subject, filename)
        for evidence in document_evidence(issues, text):
            keys.append(evidence.issue.key)
            memory.append(memory_key(evidence.issue))
            features.append(flag_features(evidence, stats))
    if not keys:
        return decisions
    predictions = model.predict(feature_matrix(features, model.info.n_features), memory)
    for key, prediction in zip(keys, predictions, strict=True):
        if prediction.answered:
            decisions.answers[key] = CascadeAnswer(
                key=key, category=prediction.category, probability=round(prediction.probability, 4)
            )
    if settings.cascade_audit:
        drawn = sorted(decisions.answers)
        random.Random(settings.cascade_seed).shuffle(drawn)
        for key in drawn[: settings.cascade_audit]:
            decisions.answers[key].audit = True
    return decisions


def cascade_result(spec: CascadeSpec) -> BatchResult:
    """The cascade's answers for one document, as a provider's batch result would hold them."""
    reason = (
        f"Answered locally by the cascade classifier (model {spec.model[:12]}, trained on "
        f"{spec.trained_on} model answers)."
    )
    return BatchResult(
        batch_id=BATCH_ID,
        fingerprint=spec.model,
        provider=STAGE,
        model=spec.model,
        items={
            a.key: FlagResult(
                status="ok",
                error_category=a.category,
                confidence_score=round(a.probability * 100),
                reasoning=reason,
                notes=["also sent to the provider (audit)"] if a.audit else [],
            )
            for a in spec.answers
        },
    )
