"""The answer cache: answers kept later by a thread, and taken back from a job's results file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from test_categorise import BATCH, Scripted, ok

from llm_categoriser import answers
from llm_categoriser.answers import drain, load_answer, recover_answers, save_answers_later
from llm_categoriser.categorise import categorise_batch
from llm_categoriser.layout import Layout
from llm_categoriser.records import BatchResult, FlagResult, RemoteJobResults, write_record


def _layout(tmp_path: Path) -> Layout:
    return Layout("Documents", str(tmp_path))


def _answer(fingerprint: str) -> BatchResult:
    batch = BATCH.model_copy(update={"batch_id": fingerprint, "fingerprint": fingerprint})
    return categorise_batch(batch, Scripted([ok(0, 1)]), max_retries=0)


def _failed(fingerprint: str) -> BatchResult:
    return BatchResult(
        batch_id=fingerprint,
        fingerprint=fingerprint,
        provider="scripted",
        model="m",
        items={"key0": FlagResult(status="failed", error="HTTP 503")},
    )


def _results_file(tmp_path: Path, batches: list[BatchResult]) -> str:
    path = tmp_path / "jobs" / "J-01" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(
        path,
        RemoteJobResults(job="J-01", name="batches/1", state="SUCCEEDED", fetched_at="", batches=batches),
    )
    return str(path)


def test_answers_kept_later_are_all_in_the_cache_once_drained(tmp_path):
    layout = _layout(tmp_path)
    kept = [_answer(f"f{i}") for i in range(40)]
    save_answers_later(layout, [*kept, _failed("bad")])
    save_answers_later(layout, [_answer("g")])
    assert drain() == 41
    assert all(load_answer(layout, a.fingerprint) == a for a in [*kept, _answer("g")])
    assert load_answer(layout, "bad") is None  # only complete answers are kept
    assert drain() == 0  # nothing left to wait for


def test_a_write_that_fails_is_logged_not_raised(tmp_path, caplog):
    blocked = tmp_path / "data"
    blocked.write_text("a file where the cache's folder should be", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger=answers.log.name):
        save_answers_later(_layout(blocked), [_answer("f0"), _answer("f1")])
        assert drain() == 0
    assert "not kept in the cache" in caplog.text


def test_answers_received_are_recovered_from_a_results_file(tmp_path):
    layout = _layout(tmp_path)
    received, reused = _answer("f0"), _answer("f1").as_reused()
    results = _results_file(tmp_path, [received, reused, _failed("f2"), _answer("f3")])
    assert recover_answers(layout, results, {"f0", "f1", "f2", "other"}) == {"f0"}
    assert load_answer(layout, "f0") == received
    # an answer taken from the cache (its counts zeroed), one that failed, or one not asked for is not kept
    assert [load_answer(layout, f) for f in ("f1", "f2", "f3")] == [None, None, None]


def test_a_missing_or_damaged_results_file_recovers_nothing(tmp_path, caplog):
    layout = _layout(tmp_path)
    assert recover_answers(layout, str(tmp_path / "none.json"), {"f0"}) == set()
    damaged = tmp_path / "results.json"
    damaged.write_text('{"batches": [{"fingerprint": "f0", "items": 3}]}', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger=answers.log.name):
        assert recover_answers(layout, str(damaged), {"f0"}) == set()
    assert "results.json is unreadable" in caplog.text
    assert load_answer(layout, "f0") is None


def _slowly(save):
    def slow(layout, result):
        time.sleep(0.5)
        return save(layout, result)

    return slow


def test_the_main_process_waits_at_exit_for_the_answers_its_helper_keeps_later(tmp_path, monkeypatch):
    """The helper of a batch-mode run keeps a fetch's answers from a thread; what the main
    process runs at exit waits for them, before the helper is ended."""
    from llm_categoriser import remote_helper, steps

    layout = _layout(tmp_path)
    monkeypatch.setattr(answers, "save_answer", _slowly(answers.save_answer))  # before the fork
    monkeypatch.setattr(remote_helper.threading, "active_count", lambda: 1)  # pytest's threads
    assert remote_helper.start(lambda: None, cores=2)
    try:
        remote_helper.run(save_answers_later, layout, [_answer("f0"), _answer("f1")])
        assert load_answer(layout, "f1") is None  # handed back before the answers are written
        steps._drain_helper()
        assert load_answer(layout, "f0") == _answer("f0") and load_answer(layout, "f1") == _answer("f1")
    finally:
        remote_helper.stop()
