"""Train the cascade's classifier on a model's answers and calibrate it by document.

Logistic regression on hashed features (scikit-learn): it trains in seconds on thousands of
flags, is deterministic, gives probabilities that rank well, and reduces to arrays that load
without code (``model.py``). Calibration: cross-validation with documents as groups (a flag is
never scored by a classifier that saw its document) gives an out-of-fold probability for every
answer; the held-out flags are split into segments by the answer memory (``memory.py``: the
flag's rule and word never answered by the model in the training folds, answered once, or more
often), and per segment and predicted category the threshold is the lowest probability at which
the held-out flags at or above it agreed with the model on at least ``min_agreement`` of them
(and at least ``min_support`` flags were seen there). The model that answers is the fold models
together (the mean of their probabilities), not one refitted on every answer: a refitted model
is surer of itself than the models the thresholds were calibrated on, so it answers more flags
than calibrated, at a lower agreement. Measured choices: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import CategoriserError
from .features import FEATURES_VERSION
from .memory import SEGMENTS, counts_from, memory_arrays, segment_of
from .model import MODEL_FORMAT, CascadeModel, CategoryCalibration, ModelInfo


class TrainingError(CategoriserError):
    """Too few answers, or answers that cannot train a classifier; the message says what to do."""


class TrainSettings(BaseModel):
    """Settings of a training run (part of the model's fingerprint)."""

    model_config = ConfigDict(frozen=True)

    seed: int = 0
    min_agreement: float = Field(0.9, gt=0, le=1)
    min_support: int = Field(10, ge=1)
    folds: int = Field(10, ge=2)
    regularisation: float = Field(0.3, gt=0, description="inverse strength, scikit-learn's C")
    unseen_z: float = Field(
        1.0, ge=0, description="words never answered before: the Wilson lower bound (z) must meet the target"
    )
    n_features: int = 2**20


@dataclass(frozen=True)
class Example:
    """One answer of a model, with the features of its flag."""

    key: str
    document: str
    features: dict[str, float]
    category: str
    memory_key: int  # the hashed (rule id, word) of the flag (``memory.memory_key``)


def hasher(n_features: int) -> Any:
    from sklearn.feature_extraction import FeatureHasher

    return FeatureHasher(n_features=n_features, input_type="dict", alternate_sign=False)


def feature_matrix(features: Sequence[dict[str, float]], n_features: int) -> Any:
    return hasher(n_features).transform(features).tocsr()


@cache
def code_digest() -> str:
    """The code a model depends on: this package and the offline rules (a feature)."""
    from ..providers.offline import rules as offline_rules

    here = Path(__file__).parent
    digest = hashlib.sha256()
    for path in [*sorted(here.glob("*.py")), Path(offline_rules.__file__)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def answers_digest(examples: Sequence[Example]) -> str:
    lines = sorted(f"{e.key}\t{e.category}" for e in examples)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:16]


def wilson_lower(agreed: int, total: int, z: float) -> float:
    """The Wilson score lower bound of the agreement ``agreed / total`` (the share itself at z = 0)."""
    share = agreed / total
    if z <= 0:
        return share
    spread = z * np.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return float((share + z * z / (2 * total) - spread) / (1 + z * z / total))


def calibrate(
    classes: Sequence[str],
    probabilities: np.ndarray,
    truth: Sequence[str],
    min_agreement: float,
    min_support: int,
    z: float = 0.0,
) -> dict[str, CategoryCalibration]:
    """Per predicted category, the lowest threshold whose held-out agreement meets the target.

    With ``z`` > 0 it is the Wilson lower bound of that agreement (z standard errors) that must
    meet it: a stricter bar where few held-out flags decide it."""
    predicted = probabilities.argmax(axis=1)
    best = probabilities.max(axis=1)
    result: dict[str, CategoryCalibration] = {}
    for index, category in enumerate(classes):
        rows = np.flatnonzero(predicted == index)
        order = rows[np.argsort(-best[rows], kind="stable")]
        probs = best[order]
        agreed = np.cumsum([truth[i] == category for i in order])
        threshold: float | None = None
        covered = agreed_count = 0
        for k in range(len(order), 0, -1):
            if k < len(order) and probs[k] == probs[k - 1]:
                continue  # a threshold covers every flag of the same probability
            meets = (
                agreed[k - 1] >= min_agreement * k
                if z <= 0
                else wilson_lower(int(agreed[k - 1]), k, z) >= min_agreement
            )
            if k >= min_support and meets:
                threshold, covered, agreed_count = float(probs[k - 1]), k, int(agreed[k - 1])
                break
        result[category] = CategoryCalibration(
            threshold=threshold, held_out=len(order), covered=covered, agreed=agreed_count
        )
    return result


def calibrate_segments(
    classes: Sequence[str],
    probabilities: np.ndarray,
    truth: Sequence[str],
    segments: Sequence[str],
    min_agreement: float,
    min_support: int,
    unseen_z: float = 0.0,
) -> dict[str, dict[str, CategoryCalibration]]:
    """``calibrate`` within each segment of the answer memory (segment -> category -> result);
    in the segment of words never answered before, with the Wilson bound at ``unseen_z``."""
    tags = np.asarray(segments)
    result: dict[str, dict[str, CategoryCalibration]] = {}
    for segment in SEGMENTS:
        rows = np.flatnonzero(tags == segment)
        result[segment] = calibrate(
            classes,
            probabilities[rows],
            [truth[i] for i in rows],
            min_agreement,
            min_support,
            unseen_z if segment == SEGMENTS[0] else 0.0,
        )
    return result


def _classifier(settings: TrainSettings) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=settings.regularisation, solver="newton-cg", max_iter=300, random_state=settings.seed
    )


def folds(
    labels: np.ndarray, groups: np.ndarray, settings: TrainSettings
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cross-validation folds (training rows, held-out rows), whole documents, seeded."""
    from sklearn.model_selection import GroupKFold

    count = min(settings.folds, len(set(groups.tolist())))
    splitter = GroupKFold(n_splits=count, shuffle=True, random_state=settings.seed)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


def held_out_segments(
    keys: Sequence[int], labels: np.ndarray, groups: np.ndarray, settings: TrainSettings
) -> list[str]:
    """Each flag's memory segment as cross-validation sees it: counted in its training folds."""
    segments = [""] * len(keys)
    for train_rows, test_rows in folds(labels, groups, settings):
        known = [keys[i] for i in train_rows]
        for row, count in zip(test_rows, counts_from([keys[i] for i in test_rows], known), strict=True):
            segments[row] = segment_of(count)
    return segments


@dataclass(frozen=True)
class FoldModels:
    """The cross-validation's fold models as softmax weights over every class, and their
    out-of-fold probabilities."""

    classes: list[str]
    probabilities: np.ndarray  # (flags, classes): each flag scored by the model that never saw it
    coef: np.ndarray  # (folds, classes, columns)
    intercept: np.ndarray  # (folds, classes); -inf for a class absent from a fold's training rows


def _softmax_weights(clf: Any, classes: list[str], columns: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted classifier as one row of weights per class of ``classes`` (softmax form).

    A two-class logistic regression has one row, for its second class: as softmax rows it is
    zero for the first and that row for the second. A class it never saw gets probability 0.
    """
    coef = np.zeros((len(classes), columns))
    intercept = np.full(len(classes), -np.inf)
    rows = [classes.index(c) for c in clf.classes_]
    if len(rows) == 2 and clf.coef_.shape[0] == 1:
        coef[rows[1]] = clf.coef_[0]
        intercept[rows[0]], intercept[rows[1]] = 0.0, clf.intercept_[0]
    else:
        coef[rows] = clf.coef_
        intercept[rows] = clf.intercept_
    return coef, intercept


def out_of_fold(matrix: Any, labels: np.ndarray, groups: np.ndarray, settings: TrainSettings) -> FoldModels:
    """The fold models and their out-of-fold probabilities, folds of whole documents (seeded)."""
    classes = sorted(set(labels.tolist()))
    probabilities = np.zeros((len(labels), len(classes)))
    coefs, intercepts = [], []
    for train_rows, test_rows in folds(labels, groups, settings):
        if len(set(labels[train_rows].tolist())) < 2:  # one class only: it is the answer
            only = classes.index(labels[train_rows][0])
            probabilities[np.ix_(test_rows, [only])] = 1.0
            intercept = np.full(len(classes), -np.inf)
            intercept[only] = 0.0
            coefs.append(np.zeros((len(classes), matrix.shape[1])))
            intercepts.append(intercept)
            continue
        clf = _classifier(settings).fit(matrix[train_rows], labels[train_rows])
        columns = [classes.index(c) for c in clf.classes_]
        probabilities[np.ix_(test_rows, columns)] = clf.predict_proba(matrix[test_rows])
        coef, intercept = _softmax_weights(clf, classes, matrix.shape[1])
        coefs.append(coef)
        intercepts.append(intercept)
    return FoldModels(classes, probabilities, np.stack(coefs), np.stack(intercepts))


def train(examples: Sequence[Example], settings: TrainSettings | None = None) -> CascadeModel:
    """The fold models of cross-validation by document, with thresholds from their held-out
    probabilities; the saved model answers with the mean of the fold models' probabilities."""
    settings = settings or TrainSettings()
    documents = sorted({e.document for e in examples})
    categories = sorted({e.category for e in examples})
    if len(documents) < 2:
        raise TrainingError(
            f"training needs a model's answers from at least 2 documents; found {len(documents)} "
            f"({len(examples)} answer(s)). Run the pipeline with a model provider first."
        )
    if len(categories) < 2:
        raise TrainingError(
            f"training needs answers of at least 2 categories; all {len(examples)} are "
            f"{categories[0] if categories else 'none'}. Categorise more documents first."
        )
    hashed = feature_matrix([e.features for e in examples], settings.n_features)
    columns = np.unique(hashed.indices).astype(np.int64)
    matrix = hashed[:, columns]  # only the columns that occur: a small problem to solve
    labels = np.array([e.category for e in examples])
    groups = np.array([e.document for e in examples])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        fold_models = out_of_fold(matrix, labels, groups, settings)
    classes, held_out = fold_models.classes, fold_models.probabilities
    keys = [e.memory_key for e in examples]
    segments = held_out_segments(keys, labels, groups, settings)
    calibration = calibrate_segments(
        classes,
        held_out,
        labels.tolist(),
        segments,
        settings.min_agreement,
        settings.min_support,
        settings.unseen_z,
    )
    covered = sum(c.covered for by_category in calibration.values() for c in by_category.values())
    agreed = sum(c.agreed for by_category in calibration.values() for c in by_category.values())
    memory_keys, memory_counts = memory_arrays(keys)
    answers = answers_digest(examples)
    code = code_digest()
    fingerprint = hashlib.sha256(
        json.dumps(
            {
                "format": MODEL_FORMAT,
                "features": FEATURES_VERSION,
                "answers": answers,
                "code": code,
                "settings": settings.model_dump(),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:32]
    info = ModelInfo(
        fingerprint=fingerprint,
        classes=[str(c) for c in classes],
        n_features=settings.n_features,
        alternate_sign=False,
        features_version=FEATURES_VERSION,
        training_answers=len(examples),
        training_documents=len(documents),
        answers_digest=answers,
        code_digest=code,
        settings=settings.model_dump(),
        calibration=calibration,
        expected_coverage=covered / len(examples),
        expected_agreement=agreed / covered if covered else None,
    )
    return CascadeModel(info, columns, fold_models.coef, fold_models.intercept, memory_keys, memory_counts)
