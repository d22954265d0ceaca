"""The cascade's classifier: features, deterministic training, calibration, the saved model, train."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cascade_data import PROPER, SPLITS, TYPOS, build_corpus, write_cache

from llm_categoriser import cli
from llm_categoriser.cascade.evidence import report_evidence
from llm_categoriser.cascade.features import ReportStats, flag_features
from llm_categoriser.cascade.learn import cached_model_answers, examples_for, model_path, train_from_cache
from llm_categoriser.cascade.memory import lookup, memory_arrays, memory_key, segment_of
from llm_categoriser.cascade.model import CascadeModelError, load_model, save_model
from llm_categoriser.cascade.training import (
    Example,
    TrainingError,
    TrainSettings,
    calibrate,
    calibrate_segments,
    feature_matrix,
    folds,
    held_out_segments,
    out_of_fold,
    train,
    wilson_lower,
)
from llm_categoriser.layout import Layout
from llm_categoriser.lt_report import load_report
from llm_categoriser.settings import resolve

FAST = TrainSettings(n_features=2**18)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("cascade")
    return build_corpus(root)


@pytest.fixture(scope="module")
def examples(corpus: tuple[Path, dict[str, str]]) -> list:
    report, answers = corpus
    return examples_for(load_report(report).issues, answers, Layout(str(report.parent), "data"))


def test_features_hold_the_flag_the_document_and_the_offline_verdict(corpus) -> None:
    report, _answers = corpus
    issues = load_report(report).issues
    evidence = report_evidence(issues, Layout(str(report.parent), "data"))
    stats = ReportStats.from_issues(issues)
    proper = next(i for i in issues if i.issue == PROPER[0])
    features = flag_features(evidence[proper.key], stats)
    assert features["rule=MORFOLOGIK_RULE_EN_GB"] == 1.0
    assert f"word={PROPER[0].lower()}" in features
    assert features["shape=title"] == 1.0
    # the name occurs 3 x 2 times in its document, and is flagged in several documents
    assert any(name.startswith("freq=") and name != "freq=0" for name in features)
    assert stats.documents[PROPER[0].lower()] >= 2
    assert any(name.startswith("report_docs=") for name in features)
    offline = evidence[proper.key].offline_category
    assert features[f"off={offline}"] == 1.0
    assert 0 <= features["off_confidence"] <= 1


def test_training_is_deterministic(examples) -> None:
    first = train(examples, FAST)
    second = train(examples, FAST)
    assert first.fingerprint == second.fingerprint
    assert np.array_equal(first.columns, second.columns)
    assert np.array_equal(first.coef, second.coef)
    assert first.info.calibration == second.info.calibration
    other_seed = train(examples, FAST.model_copy(update={"seed": 7}))
    assert other_seed.fingerprint != first.fingerprint


def test_the_model_learns_the_synthetic_patterns(examples) -> None:
    model = train(examples, FAST)
    matrix = feature_matrix([e.features for e in examples], FAST.n_features)
    predictions = model.predict(matrix, [e.memory_key for e in examples])
    agree = sum(p.category == e.category for p, e in zip(predictions, examples, strict=True))
    assert agree / len(examples) > 0.8
    answered = [(p, e) for p, e in zip(predictions, examples, strict=True) if p.answered]
    assert answered, "a clean synthetic set must let some category pass the threshold"
    for prediction, _example in answered:
        threshold = model.info.calibration[prediction.segment][prediction.category].threshold
        assert threshold is not None and prediction.probability >= threshold
        assert 0 <= prediction.confidence <= 100
    assert 0 < model.info.expected_coverage <= 1
    assert model.info.expected_agreement is not None and model.info.expected_agreement >= FAST.min_agreement


def sklearn_model():  # the classifier ``train`` fits, as scikit-learn makes it
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=FAST.regularisation, solver="newton-cg", max_iter=300, random_state=0)


def test_own_prediction_is_the_mean_of_the_fold_models_of_scikit_learn(examples) -> None:
    model = train(examples, FAST)
    hashed = feature_matrix([e.features for e in examples], FAST.n_features)
    labels = np.array([e.category for e in examples])
    groups = np.array([e.document for e in examples])
    expected = np.zeros((len(examples), len(model.info.classes)))
    cross = folds(labels, groups, FAST)
    assert model.coef.shape[0] == len(cross) == min(FAST.folds, len(set(groups.tolist())))
    for train_rows, _test_rows in cross:
        reference = sklearn_model()
        reference.fit(hashed[train_rows][:, model.columns], labels[train_rows])
        columns = [model.info.classes.index(c) for c in reference.classes_]
        expected[:, columns] += reference.predict_proba(hashed[:, model.columns]) / len(cross)
    assert np.allclose(expected, model.probabilities(hashed), atol=1e-6)


def test_a_two_class_fold_and_a_class_a_fold_never_saw_keep_their_probabilities() -> None:
    # class C occurs in one document only: the fold that holds it out never saw C
    documents = np.array([f"doc-{n // 5}" for n in range(50)])
    labels = np.array(["C" if d == "doc-0" else ("A" if n % 2 else "B") for n, d in enumerate(documents)])
    features = [{f"label={label}": 1.0, "bias": 1.0} for label in labels]
    hashed = feature_matrix(features, FAST.n_features)
    fold_models = out_of_fold(hashed, labels, documents, FAST)
    assert np.isneginf(fold_models.intercept).any()
    for (train_rows, test_rows), coef, intercept in zip(
        folds(labels, documents, FAST), fold_models.coef, fold_models.intercept, strict=True
    ):
        reference = sklearn_model()
        reference.fit(hashed[train_rows], labels[train_rows])
        scores = np.asarray(hashed[test_rows] @ coef.T) + intercept
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        mine = exp / exp.sum(axis=1, keepdims=True)
        columns = [fold_models.classes.index(c) for c in reference.classes_]
        assert np.allclose(mine[:, columns], reference.predict_proba(hashed[test_rows]), atol=1e-6)
        assert np.allclose(mine.sum(axis=1), 1.0)
    two = np.array(["A" if n % 2 else "B" for n in range(50)])
    binary = out_of_fold(hashed, two, documents, FAST)
    assert binary.coef.shape[1] == 2 and np.isfinite(binary.intercept).all()


def test_calibration_picks_the_lowest_threshold_that_meets_the_target() -> None:
    classes = ["A", "B"]
    # predicted A at descending probabilities; truth agrees for the top 10, then alternates
    probs_a = np.linspace(0.99, 0.6, 20)
    truth = ["A"] * 10 + ["B", "A"] * 5
    probabilities = np.column_stack([probs_a, 1 - probs_a])
    result = calibrate(classes, probabilities, truth, min_agreement=0.9, min_support=5)
    a = result["A"]
    assert a.held_out == 20
    # cumulative agreement: 10/10, 10/11, 11/12 ... the largest prefix with >= 90% is 12 (11/12)
    assert a.covered == 12 and a.agreed == 11
    assert a.threshold == pytest.approx(probs_a[11])
    assert result["B"].threshold is None and result["B"].held_out == 0
    stricter = calibrate(classes, probabilities, truth, min_agreement=1.0, min_support=11)
    assert stricter["A"].threshold is None  # 10 perfect flags are fewer than min_support


def test_each_memory_segment_has_its_own_thresholds() -> None:
    classes = ["A", "B"]
    probabilities = np.column_stack([np.full(40, 0.8), np.full(40, 0.2)])
    truth = ["A"] * 20 + ["A", "B"] * 10  # seen words: all agree; unseen: half of them
    segments = ["seen_more"] * 20 + ["unseen"] * 20
    result = calibrate_segments(classes, probabilities, truth, segments, min_agreement=0.9, min_support=5)
    assert set(result) == {"unseen", "seen_once", "seen_more"}
    assert result["seen_more"]["A"].threshold == pytest.approx(0.8) and result["seen_more"]["A"].covered == 20
    assert result["unseen"]["A"].threshold is None and result["unseen"]["A"].held_out == 20
    assert result["seen_once"]["A"].held_out == 0


def test_words_never_answered_before_need_the_wilson_bound_to_meet_the_target() -> None:
    # 100 held-out flags at one probability, 95 agreeing, in each segment: the share (95%) meets
    # a 0.9 target, its Wilson lower bound at z = 1 (92.3%) too, at z = 2 (88.7%) not
    classes = ["A", "B"]
    probabilities = np.column_stack([np.full(200, 0.8), np.full(200, 0.2)])
    truth = (["A"] * 95 + ["B"] * 5) * 2
    segments = ["seen_more"] * 100 + ["unseen"] * 100
    assert wilson_lower(95, 100, 1.0) == pytest.approx(0.9234, abs=1e-4)
    assert wilson_lower(95, 100, 2.0) < 0.9 <= wilson_lower(95, 100, 0.0)
    lenient = calibrate_segments(classes, probabilities, truth, segments, 0.9, 10, unseen_z=1.0)
    assert lenient["unseen"]["A"].covered == 100
    strict = calibrate_segments(classes, probabilities, truth, segments, 0.9, 10, unseen_z=2.0)
    assert strict["unseen"]["A"].threshold is None  # the bound misses the target
    assert strict["seen_more"]["A"].covered == 100  # words seen before keep the share itself
    assert TrainSettings().unseen_z == 1.0


def test_the_answer_memory_keys_hash_the_rule_and_word(corpus) -> None:
    report, _answers = corpus
    issues = load_report(report).issues
    first = issues[0]
    same = first.model_copy(update={"issue": f"  {first.issue.upper()} ", "context": "other"})
    other_rule = first.model_copy(update={"rule_id": "OTHER_RULE"})
    assert memory_key(same) == memory_key(first) != memory_key(other_rule)
    assert -(2**63) <= memory_key(first) < 2**63
    assert [segment_of(n) for n in (0, 1, 2, 9)] == ["unseen", "seen_once", "seen_more", "seen_more"]
    keys, counts = memory_arrays([5, 3, 5, 5])
    assert keys.tolist() == [3, 5] and counts.tolist() == [1, 3]
    assert lookup([5, 4, 3, 99, -7], keys, counts) == [3, 0, 1, 0, 0]
    assert lookup([1], keys[:0], counts[:0]) == [0]


def test_cross_validation_counts_the_memory_from_the_training_folds_only() -> None:
    documents = np.array([f"doc-{n // 4}" for n in range(40)])
    labels = np.array(["A", "B"] * 20)
    own_word = [int(d.split("-")[1]) for d in documents]  # a word found in one document only
    shared_word = [7] * 40  # a word found in every document
    assert set(held_out_segments(own_word, labels, documents, FAST)) == {"unseen"}
    assert set(held_out_segments(shared_word, labels, documents, FAST)) == {"seen_more"}


def test_calibration_treats_equal_probabilities_as_one_step() -> None:
    probabilities = np.array([[0.9, 0.1]] * 4 + [[0.8, 0.2]] * 4)
    truth = ["A", "A", "A", "B", "A", "A", "A", "A"]
    result = calibrate(["A", "B"], probabilities, truth, min_agreement=0.75, min_support=1)
    assert result["A"].covered == 8  # never 3 of the four flags at 0.9: a threshold takes all four
    assert result["A"].agreed == 7


def test_cross_validation_never_scores_a_document_it_trained_on() -> None:
    # each document has its own feature and its own answer: only a fold that saw the document
    # could predict it, so held-out predictions must fall back to the prior
    documents = np.array([f"doc-{n // 6}" for n in range(60)])
    labels = np.array(["A" if int(d[-1]) % 2 else "B" for d in documents])
    features = [{f"document={d}": 1.0, "bias": 1.0} for d in documents]
    hashed = feature_matrix(features, FAST.n_features)
    fold_models = out_of_fold(hashed, labels, documents, FAST)
    classes, probabilities = fold_models.classes, fold_models.probabilities
    assert probabilities.shape == (60, 2) and np.allclose(probabilities.sum(axis=1), 1.0)
    predicted = np.array(classes)[probabilities.argmax(axis=1)]
    assert (predicted == labels).mean() < 0.8
    assert probabilities.max() < 0.8
    in_sample = train(
        [
            Example(str(n), d, f, label, n)
            for n, (d, f, label) in enumerate(zip(documents, features, labels, strict=True))
        ],
        FAST,
    )
    predicted = [p.category for p in in_sample.predict(hashed, list(range(60)))]
    assert (np.array(predicted) == labels).all()


def test_saved_model_holds_no_text_of_the_corpus(examples, tmp_path: Path) -> None:
    model = train(examples, FAST)
    path = tmp_path / "model.npz"
    save_model(path, model)
    words = [*PROPER, *(t for t, _ in TYPOS), *(r for _, r in TYPOS), *(w for _, w in SPLITS)]
    words += ["Geography", "History", "doc-00", "spelling mistake", "The visit"]
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    assert set(members) == {
        "header.npy",
        "columns.npy",
        "coef.npy",
        "intercept.npy",
        "memory_keys.npy",
        "memory_counts.npy",
    }
    for name, data in members.items():
        for word in words:
            for encoded in (word.encode(), word.lower().encode(), word.encode("utf-32-le")):
                assert encoded not in data, f"{word!r} found in {name}"
    loaded = load_model(path)
    assert loaded.info == model.info
    matrix = feature_matrix([e.features for e in examples], FAST.n_features)
    assert np.allclose(loaded.probabilities(matrix), model.probabilities(matrix))
    keys = [e.memory_key for e in examples]
    assert loaded.seen(keys) == model.seen(keys) and min(model.seen(keys)) >= 1


def test_a_bad_model_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CascadeModelError, match=r"not found.*train"):
        load_model(tmp_path / "missing.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a model")
    with pytest.raises(CascadeModelError, match=r"unreadable.*train"):
        load_model(broken)
    # an archive that needs pickle to load is refused, not run
    evil = tmp_path / "evil.npz"
    np.savez(evil, header=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CascadeModelError, match="train"):
        load_model(evil)


def test_training_refuses_too_little(examples) -> None:
    one_document = [e for e in examples if e.document == examples[0].document]
    with pytest.raises(TrainingError, match="at least 2 documents"):
        train(one_document, FAST)
    one_category = [
        e.__class__(e.key, e.document, e.features, "FALSE_POSITIVE", e.memory_key) for e in examples
    ]
    with pytest.raises(TrainingError, match="at least 2 categories"):
        train(one_category, FAST)


def test_only_a_real_models_answers_are_learnt(corpus, tmp_path: Path) -> None:
    _report, answers = corpus
    keys = sorted(answers)
    data = tmp_path / "data"
    write_cache(data, {k: answers[k] for k in keys[:10]}, "gemini", "a" * 32)
    write_cache(data, {k: "PARSING_ERROR" for k in keys[:20]}, "offline", "b" * 32)
    write_cache(data, {k: "PARSING_ERROR" for k in keys[:30]}, "cascade", "c" * 32)
    found = cached_model_answers(Layout("Documents", str(data)))
    assert found.answers == {k: answers[k] for k in keys[:10]}
    assert found.skipped_providers == {"offline": 20, "cascade": 30}
    # a newer answer of a model wins
    newer = write_cache(data, {keys[0]: "AMBIGUOUS_PHRASING"}, "gemini", "d" * 32)
    stamp = max(p.stat().st_mtime_ns for p in (data / "cache").glob("*/*.json")) + 10**9
    os.utime(newer, ns=(stamp, stamp))
    assert cached_model_answers(Layout("Documents", str(data))).answers[keys[0]] == "AMBIGUOUS_PHRASING"


def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    report, answers = build_corpus(tmp_path)
    (tmp_path / "config.yaml").write_text("documents_dir: Documents\ndata_dir: data\n", encoding="utf-8")
    return report, answers


def test_train_from_cache_saves_a_model_and_the_cli_prints_the_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _report, answers = workspace(tmp_path)
    write_cache(tmp_path / "data", answers, "gemini", "e" * 32)
    write_cache(tmp_path / "data", dict.fromkeys(answers, "PARSING_ERROR"), "offline", "f" * 32)
    assert cli.main(["train", "--directory", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Trained on {len(answers)} model answer(s) from 8 document(s)" in out
    assert "of flags answered locally, agreeing with the model on" in out
    assert "FALSE_POSITIVE" in out
    assert f"Not learnt from (not a model's answers): {len(answers)} of offline." in out
    settings = resolve({"documents_dir": str(tmp_path / "Documents"), "data_dir": str(tmp_path / "data")})
    saved = load_model(model_path(settings))
    assert saved.info.training_answers == len(answers)


def test_train_without_model_answers_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _report, answers = workspace(tmp_path)
    write_cache(tmp_path / "data", answers, "offline", "f" * 32)
    assert cli.main(["train", "--directory", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no model answers to learn from" in err
    assert f"{len(answers)} answer(s) of offline" in err
    assert "provider=gemini" in err
    settings = resolve({"documents_dir": str(tmp_path / "Documents"), "data_dir": str(tmp_path / "data")})
    with pytest.raises(TrainingError):
        train_from_cache(settings)


def test_the_train_rule_trains_from_the_cache(tmp_path: Path) -> None:
    from support.workflow import snakemake

    _report, answers = workspace(tmp_path)
    write_cache(tmp_path / "data", answers, "gemini", "e" * 32)
    snakemake(tmp_path, "train")
    model = load_model(tmp_path / "data" / "cascade" / "model.npz")
    assert model.info.training_answers == len(answers)
    log = (tmp_path / "data" / "logs" / "train.log").read_text(encoding="utf-8")
    assert "Expected (cross-validation by document)" in log


def test_estimate_counts_what_the_cascade_saves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    _report, answers = workspace(tmp_path)
    write_cache(tmp_path / "data", answers, "gemini", "e" * 32)
    assert cli.main(["train", "--directory", str(tmp_path)]) == 0
    where = ["--directory", str(tmp_path), "--provider", "gemini", "--json"]
    capsys.readouterr()
    assert cli.main(["estimate", *where]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["cascade"] is None
    assert cli.main(["estimate", *where, "--config", "cascade=true"]) == 0
    cascade = json.loads(capsys.readouterr().out)
    saved = cascade["cascade"]
    assert saved["flags_answered_locally"] > 0
    assert (
        cascade["flags_to_send"] + saved["flags_answered_locally"] == plain["flags_to_send"] == len(answers)
    )
    assert saved["plain_requests"] == plain["requests_to_send"]
    assert saved["requests_saved"] == plain["requests_to_send"] - cascade["requests_to_send"] > 0
    assert saved["batches_saved"] == plain["batches"] - cascade["batches"] > 0
    assert float(saved["plain_cost_usd"]) == pytest.approx(float(plain["cost_usd"]))
    assert float(saved["cost_usd_saved"]) == pytest.approx(
        float(plain["cost_usd"]) - float(cascade["cost_usd"])
    )
    assert saved["input_tokens_saved"] > 0 and float(saved["cost_usd_saved"]) > 0
    # the run without the cascade is planned apart: the run's own decisions are still there
    assert list((tmp_path / "data" / "plan").glob("*/*/cascade.json"))
    assert cli.main(["estimate", *where[:-1], "--config", "cascade=true"]) == 0
    line = f"Cascade: {saved['flags_answered_locally']} flag(s) answered locally, "
    line += f"saving {saved['requests_saved']} request(s)"
    assert line in capsys.readouterr().out
