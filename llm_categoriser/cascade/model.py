"""The trained cascade model: hashed-feature weights, per-category thresholds, a fingerprint.

The model is the ensemble of the cross-validation's fold models: its probability is the mean of
theirs, so the thresholds, calibrated on those models' held-out probabilities, apply to the
probabilities of the models that answer (docs/DESIGN.md §30).

With the weights, the model keeps its answer memory (``memory.py``: hashed (rule id, word) keys
and how many training answers each has), which picks the thresholds a flag is held to.
Saved as one NumPy ``.npz`` archive of plain numeric arrays plus a JSON header (an array of
text), read back with ``allow_pickle=False``: loading it runs no code, whoever wrote the file
(a pickle, or a joblib file, loaded from a user-writable folder would run whatever it holds;
docs/DESIGN.md §30). Prediction is a sparse product and a softmax, done here, so
scikit-learn is needed to train but the file format does not depend on its internals.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..atomic import atomic_write_bytes
from ..errors import CategoriserError
from .memory import SEGMENTS, lookup, segment_of

MODEL_FORMAT = 3


class CascadeModelError(CategoriserError):
    """A cascade model file that is missing, unreadable or of another format."""


class CategoryCalibration(BaseModel):
    """What cross-validation by document measured for one predicted category."""

    threshold: float | None = Field(description="answer locally at or above this probability; None: never")
    held_out: int = Field(description="held-out flags predicted as this category")
    covered: int = Field(description="of those, at or above the threshold")
    agreed: int = Field(description="of the covered, where the model's answer was the same")


class ModelInfo(BaseModel):
    """The JSON header of a saved model (no text of the corpus: counts, digests, settings)."""

    model_config = ConfigDict(frozen=True)

    format: int = MODEL_FORMAT
    fingerprint: str
    classes: list[str]
    n_features: int
    alternate_sign: bool
    features_version: int
    training_answers: int
    training_documents: int
    answers_digest: str
    code_digest: str
    settings: dict[str, Any]
    calibration: dict[str, dict[str, CategoryCalibration]] = Field(
        description="memory segment -> predicted category -> what cross-validation measured"
    )
    expected_coverage: float
    expected_agreement: float | None


@dataclass
class Prediction:
    category: str
    probability: float
    answered: bool
    segment: str = SEGMENTS[0]

    @property
    def confidence(self) -> int:
        """The classifier's probability as the 0-100 confidence of the CSV."""
        return round(self.probability * 100)


@dataclass
class CascadeModel:
    info: ModelInfo
    columns: np.ndarray  # hashed column numbers that carry weight (int64, sorted)
    coef: np.ndarray  # (members, n_classes, len(columns)) float64: one softmax model per fold
    intercept: np.ndarray  # (members, n_classes) float64; -inf for a class a member never saw
    memory_keys: np.ndarray  # hashed (rule id, word) of the training answers (int64, sorted, unique)
    memory_counts: np.ndarray  # training answers per key (int64)

    @property
    def fingerprint(self) -> str:
        return self.info.fingerprint

    def probabilities(self, matrix: Any) -> np.ndarray:
        """Class probabilities for a (n, n_features) sparse matrix of hashed features: the mean
        of the members' softmax probabilities."""
        selected = matrix[:, self.columns]
        total = np.zeros((selected.shape[0], len(self.info.classes)))
        for coef, intercept in zip(self.coef, self.intercept, strict=True):
            scores = np.asarray(selected @ coef.T) + intercept
            scores -= scores.max(axis=1, keepdims=True)
            exp = np.exp(scores)
            total += exp / exp.sum(axis=1, keepdims=True)
        return total / len(self.coef)

    def seen(self, keys: Sequence[int]) -> list[int]:
        """How many training answers share each flag's memory key."""
        return lookup(keys, self.memory_keys, self.memory_counts)

    def predict(self, matrix: Any, keys: Sequence[int]) -> list[Prediction]:
        """The prediction for each row of ``matrix``, whose flags have the memory ``keys``."""
        probabilities = self.probabilities(matrix)
        best = probabilities.argmax(axis=1)
        out: list[Prediction] = []
        for row, (index, count) in enumerate(zip(best, self.seen(keys), strict=True)):
            category = self.info.classes[int(index)]
            probability = float(probabilities[row, index])
            segment = segment_of(count)
            threshold = self.info.calibration[segment][category].threshold
            answered = threshold is not None and probability >= threshold
            out.append(Prediction(category, probability, answered, segment))
        return out


def save_model(path: str | os.PathLike[str], model: CascadeModel) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        header=np.array(model.info.model_dump_json()),
        columns=model.columns.astype(np.int64),
        coef=model.coef.astype(np.float64),
        intercept=model.intercept.astype(np.float64),
        memory_keys=model.memory_keys.astype(np.int64),
        memory_counts=model.memory_counts.astype(np.int64),
    )
    atomic_write_bytes(path, buffer.getvalue())


def load_model(path: str | os.PathLike[str]) -> CascadeModel:
    """The model saved at ``path``; CascadeModelError says what is wrong and what to do."""
    target = Path(path)
    retrain = "run `python -m llm_categoriser train` to make a new one"
    try:
        with np.load(target, allow_pickle=False) as archive:
            header = str(archive["header"])
            columns = np.asarray(archive["columns"], dtype=np.int64)
            coef = np.asarray(archive["coef"], dtype=np.float64)
            intercept = np.asarray(archive["intercept"], dtype=np.float64)
            memory_keys = np.asarray(archive["memory_keys"], dtype=np.int64)
            memory_counts = np.asarray(archive["memory_counts"], dtype=np.int64)
    except FileNotFoundError:
        raise CascadeModelError(
            f"cascade model {target} not found: {retrain}, or set cascade: false"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise CascadeModelError(f"cascade model {target} is unreadable ({exc}): {retrain}") from None
    try:
        info = ModelInfo.model_validate(json.loads(header))
    except (ValueError, ValidationError) as exc:
        raise CascadeModelError(f"cascade model {target} has an invalid header ({exc}): {retrain}") from None
    if info.format != MODEL_FORMAT:
        raise CascadeModelError(
            f"cascade model {target} has format {info.format}, this version reads {MODEL_FORMAT}: {retrain}"
        )
    members = coef.shape[0] if coef.ndim == 3 else 0
    if (
        members < 1
        or coef.shape != (members, len(info.classes), len(columns))
        or intercept.shape != (members, len(info.classes))
        or not np.isfinite(coef).all()
        or bool(np.isnan(intercept).any() or np.isposinf(intercept).any())
        or not np.isfinite(intercept).any(axis=1).all()
    ):
        raise CascadeModelError(f"cascade model {target} has arrays of the wrong shape: {retrain}")
    if len(columns) and (columns.min() < 0 or columns.max() >= info.n_features):
        raise CascadeModelError(f"cascade model {target} has feature columns out of range: {retrain}")
    if (
        memory_keys.ndim != 1
        or memory_counts.shape != memory_keys.shape
        or (len(memory_keys) > 1 and bool(np.any(np.diff(memory_keys) <= 0)))
        or set(info.calibration) != set(SEGMENTS)
        or any(set(by_category) != set(info.classes) for by_category in info.calibration.values())
    ):
        raise CascadeModelError(f"cascade model {target} has an inconsistent answer memory: {retrain}")
    return CascadeModel(info, columns, coef, intercept, memory_keys, memory_counts)
