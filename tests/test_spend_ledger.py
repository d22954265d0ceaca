"""The run's spend ledger, shared by threads and processes, and the meter that keeps the cap."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from llm_categoriser.costs import ledger as ledger_module
from llm_categoriser.costs.ledger import SpendLedger, SpendRecord, read_spend
from llm_categoriser.costs.meter import SpendMeter
from llm_categoriser.costs.prices import CataloguePrices, NoCharge
from llm_categoriser.costs.usage import TokenUsage

ONE = TokenUsage(input_tokens=1000, cached_tokens=100, output_tokens=200, thinking_tokens=10)


def started(tmp_path: Path, cap: Decimal | None, **start: str) -> SpendLedger:
    """A ledger in ``tmp_path``, started for a run with ``cap``."""
    ledger = SpendLedger(tmp_path / "ledger.json", tmp_path / "stops.json")
    ledger.start(cap=cap, **start)
    return ledger


def flash_meter(ledger: SpendLedger, cap: Decimal, **extra: object) -> SpendMeter:
    """A meter at Gemini 2.5 Flash's sync and batch prices, keeping ``cap`` in ``ledger``."""
    google = CataloguePrices("google")
    return SpendMeter(
        sync=google.pricing("gemini-2.5-flash", False),
        batch=google.pricing("gemini-2.5-flash", True),
        ledger=ledger,
        cap=cap,
        **extra,
    )


def _add_many(path: Path, times: int) -> None:
    ledger = SpendLedger(path, path.parent / "stops.json")
    for _ in range(times):
        ledger.add(Decimal("0.001"), ONE)


def test_concurrent_processes_lose_no_addition(tmp_path):
    path = tmp_path / "spend" / "ledger.json"
    SpendLedger(path, path.parent / "stops.json").start(cap=None)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(path, 40)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    record = SpendLedger(path, path.parent / "stops.json").read()
    assert record.requests_sent == 160
    assert record.spent_usd == Decimal("0.160")
    assert record.usage.input_tokens == 160_000 and record.usage.thinking_tokens == 1_600


def test_concurrent_threads_lose_no_addition_and_share_the_writes(tmp_path, monkeypatch):
    """Additions that arrive while the record is being written go together in the next write."""
    ledger = started(tmp_path, Decimal("100"))  # with a cap every addition is written at once
    writes = []
    original = SpendLedger._write

    def slow_write(self, record, durable=True):
        writes.append(record.requests_sent)
        time.sleep(0.01)  # long enough for the other threads' additions to queue up
        original(self, record, durable)

    monkeypatch.setattr(SpendLedger, "_write", slow_write)
    threads = [threading.Thread(target=_add_many, args=(tmp_path / "ledger.json", 10)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = ledger.read()
    assert record.requests_sent == 80 and record.spent_usd == Decimal("0.080")
    assert len(writes) < 80 and writes == sorted(writes)


def test_an_addition_whose_write_failed_is_written_by_the_next(tmp_path, monkeypatch):
    ledger = started(tmp_path, Decimal("100"))
    original = SpendLedger._write
    failures = iter([OSError("disk full")])

    def failing_once(self, record, durable=True):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        original(self, record, durable)

    monkeypatch.setattr(SpendLedger, "_write", failing_once)
    with pytest.raises(OSError, match="disk full"):
        ledger.add(Decimal("0.25"), ONE)
    assert ledger.read().requests_sent == 0
    ledger.add(Decimal("0.5"), ONE)
    assert (ledger.read().requests_sent, ledger.read().spent_usd) == (2, Decimal("0.75"))


def test_start_resets_and_unpriced_requests_are_counted_apart(tmp_path):
    ledger = SpendLedger(tmp_path / "ledger.json", tmp_path / "stops.json")
    first = ledger.start(cap=Decimal("1"))
    ledger.add(Decimal("0.5"), ONE)
    ledger.add(None, ONE)
    record = ledger.read()
    assert (record.spent_usd, record.requests_sent, record.unpriced_requests) == (Decimal("0.5"), 2, 1)
    second = ledger.start(cap=None)
    assert second.run_id != first.run_id
    assert ledger.read().spent_usd == 0 and ledger.read().requests_sent == 0


def test_stopped_outputs_are_removed_once(tmp_path):
    ledger = started(tmp_path, Decimal("0.01"))
    output = tmp_path / "part-1.json"
    output.write_text("{}")
    ledger.mark_stopped(output)
    ledger.mark_stopped(output)
    ledger.mark_stopped(tmp_path / "gone.json")
    assert ledger.read().stopped == [str(output), str(tmp_path / "gone.json")]
    ledger.ensure_stops_file()
    before = ledger.stops_path.read_text()
    assert ledger.remove_stopped() == [str(output)]
    assert not output.exists() and ledger.read().stopped == []
    after = ledger.stops_path.read_text()
    assert after != before and str(output) in after  # the final rule's input changes
    assert ledger.remove_stopped() == []
    ledger.ensure_stops_file()
    assert ledger.stops_path.read_text() == after  # a run that stopped nothing changes nothing


def test_meter_stops_once_the_cap_is_reached(tmp_path):
    ledger = started(tmp_path, Decimal("0.002"))
    meter = flash_meter(ledger, Decimal("0.002"))
    usage = TokenUsage(input_tokens=2000, output_tokens=400)  # $0.0016 sync, $0.0008 batch
    assert meter.can_send()
    assert meter.charge(usage, batch=True) == Decimal("0.0008")
    assert meter.can_send()
    assert meter.charge(usage) == Decimal("0.0016")
    assert not meter.can_send()
    assert ledger.read().spent_usd == Decimal("0.0024")
    assert "max_cost_usd=$0.0020" in meter.stop_reason() and "spent $0.0024" in meter.stop_reason()


def test_meter_without_cap_always_sends(tmp_path):
    meter = SpendMeter(sync=CataloguePrices("google").pricing("gemini-2.5-flash", False))
    assert meter.can_send() and meter.charge(ONE) > 0


def test_remote_jobs_reserve_their_estimate_until_fetched(tmp_path):
    ledger = started(tmp_path, Decimal("0.010"))
    meter = SpendMeter(
        sync=CataloguePrices("google").pricing("gemini-2.5-flash", False),
        ledger=ledger,
        cap=Decimal("0.010"),
    )
    assert meter.reserve(Decimal("0.006"))
    assert not meter.reserve(Decimal("0.006"))  # both together would pass the cap
    assert meter.reserve(Decimal("0.004"))
    meter.release(Decimal("0.006"))
    assert ledger.read().committed_usd == Decimal("0.004")
    meter.release(Decimal("1"))  # a job submitted by an earlier run: nothing below zero
    assert ledger.read().committed_usd == 0


def test_reused_answers_are_counted_apart(tmp_path):
    ledger = started(tmp_path, None, estimate="Estimate: ...")
    ledger.add_reused(3)
    ledger.add(Decimal("0.25"), ONE)
    spend = ledger.read().as_run_spend()
    assert (spend.requests_sent, spend.requests_reused, spend.cost_usd) == (1, 3, 0.25)
    assert spend.estimate == "Estimate: ..." and spend.run_id
    assert spend.describe().startswith(
        "1 request(s) sent, 3 answered from the cache; 1,000 input (100 cached)"
    )


def test_a_tallied_meter_adds_free_requests_once_and_priced_ones_at_once(tmp_path):
    ledger = started(tmp_path, Decimal("0.002"))
    free = NoCharge().pricing("offline-rules-v1", False)
    meter = SpendMeter(sync=free, ledger=ledger, cap=Decimal("0.002"), provider="offline", model="m")
    meter.price_of = lambda provider, model, batch: CataloguePrices("google").pricing(model, batch)
    tallied = meter.tally()
    for _ in range(3):
        assert tallied.charge(ONE) == 0
    assert ledger.read().requests_sent == 0  # not yet: one addition when the job ends
    usage = TokenUsage(input_tokens=2000, output_tokens=400)  # $0.0016 sync
    assert tallied.charge(usage, provider="gemini", model="gemini-2.5-flash") == Decimal("0.0016")
    assert ledger.read().requests_sent == 1 and tallied.can_send()  # what costs money counts at once
    tallied.flush()
    tallied.flush()  # nothing twice
    record = ledger.read()
    assert record.requests_sent == 4 and record.spent_usd == Decimal("0.0016")
    assert record.usage.input_tokens == 3 * ONE.input_tokens + 2000
    assert record.usage.thinking_tokens == 3 * ONE.thinking_tokens


def test_a_settled_meter_records_a_fetch_with_the_release_of_its_reservation(tmp_path):
    ledger = started(tmp_path, Decimal("0.010"))
    meter = flash_meter(
        ledger,
        Decimal("0.010"),
        provider="gemini",
        model="gemini-2.5-flash",
        price_of=lambda provider, model, batch: None,
    )
    assert meter.reserve(Decimal("0.006"))
    settled = meter.settled()
    usage = TokenUsage(input_tokens=2000, output_tokens=400)  # $0.0008 at the batch rate
    for _ in range(3):
        assert settled.charge(usage, batch=True) == Decimal("0.0008")
    assert settled.charge(ONE, batch=True, provider="other", model="unknown-model") is not None
    during = ledger.read()  # nothing yet: the reservation stands for the job's answers
    assert (during.requests_sent, during.spent_usd, during.committed_usd) == (0, 0, Decimal("0.006"))
    settled.settle(Decimal("0.006"))
    settled.settle()  # nothing twice
    record = ledger.read()
    assert record.requests_sent == 4 and record.committed_usd == 0
    assert record.spent_usd == 3 * Decimal("0.0008") + meter.batch.cost(ONE)
    assert record.usage.input_tokens == 3 * 2000 + ONE.input_tokens


def test_a_settled_meter_counts_unpriced_answers_apart(tmp_path):
    ledger = started(tmp_path, None)
    unknown = CataloguePrices("google").pricing("no-such-model", True)
    settled = SpendMeter(sync=unknown, batch=unknown, ledger=ledger).settled()
    assert settled.charge(ONE, batch=True) is None
    settled.settle()
    record = ledger.read()
    assert (record.requests_sent, record.unpriced_requests, record.spent_usd) == (1, 1, 0)
    assert record.usage.input_tokens == ONE.input_tokens


# The run's own process without a cap: additions wait in memory until the job ends


def in_file(ledger: SpendLedger) -> SpendRecord:
    """What the file itself holds (another process's view)."""
    return SpendRecord.model_validate_json(ledger.path.read_bytes())


def test_without_a_cap_the_runs_process_writes_its_additions_when_the_job_ends(tmp_path):
    ledger = started(tmp_path, None)
    ledger.add(Decimal("0.25"), ONE)
    ledger.add(None, ONE)
    assert in_file(ledger).requests_sent == 0  # not written yet
    record = ledger.read()  # but this process's reads count them
    assert (record.requests_sent, record.unpriced_requests, record.spent_usd) == (2, 1, Decimal("0.25"))
    assert read_spend(ledger.path).requests_sent == 2
    ledger.flush()
    ledger.flush()  # nothing twice
    written = in_file(ledger)
    assert (written.requests_sent, written.unpriced_requests, written.spent_usd) == (2, 1, Decimal("0.25"))
    assert written.usage.input_tokens == 2 * ONE.input_tokens
    assert ledger.read().requests_sent == 2


def _start_add_and_exit(path: Path) -> None:
    ledger = SpendLedger(path, path.parent / "stops.json")
    ledger.start(cap=None)
    ledger.add(Decimal("0.5"), ONE)  # kept in memory: no job end flushes it


def test_what_the_runs_process_kept_in_memory_is_written_when_it_exits(tmp_path):
    path = tmp_path / "ledger.json"
    process = multiprocessing.get_context("spawn").Process(target=_start_add_and_exit, args=(path,))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    written = SpendRecord.model_validate_json(path.read_bytes())
    assert (written.requests_sent, written.spent_usd) == (1, Decimal("0.5"))


def test_with_a_cap_or_in_another_process_every_addition_is_written_at_once(tmp_path):
    capped = started(tmp_path / "capped", Decimal("1"))
    capped.add(Decimal("0.25"), ONE)
    assert in_file(capped).requests_sent == 1
    path = tmp_path / "free" / "ledger.json"
    SpendLedger(path, path.parent / "stops.json").start(cap=None)
    worker = multiprocessing.get_context("fork").Process(target=_add_many, args=(path, 3))
    worker.start()  # a cluster job: a process that did not start the run
    worker.join(60)
    assert worker.exitcode == 0
    assert SpendRecord.model_validate_json(path.read_bytes()).requests_sent == 3


def test_a_flush_adds_to_what_other_processes_wrote_meanwhile(tmp_path):
    ledger = started(tmp_path, None)
    ledger.add(Decimal("0.5"), ONE)
    worker = multiprocessing.get_context("fork").Process(target=_add_many, args=(ledger.path, 4))
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    assert (ledger.read().requests_sent, ledger.read().spent_usd) == (5, Decimal("0.504"))
    ledger.flush()
    assert (in_file(ledger).requests_sent, in_file(ledger).spent_usd) == (5, Decimal("0.504"))


def test_a_failed_flush_keeps_the_additions_for_the_next(tmp_path, monkeypatch):
    ledger = started(tmp_path, None)
    ledger.add(Decimal("0.25"), ONE)
    original = SpendLedger._write
    monkeypatch.setattr(
        SpendLedger, "_write", lambda self, record, durable=True: (_ for _ in ()).throw(OSError("disk full"))
    )
    with pytest.raises(OSError, match="disk full"):
        ledger.flush()
    assert ledger.read().requests_sent == 1
    monkeypatch.setattr(SpendLedger, "_write", original)
    ledger.flush()
    assert in_file(ledger).requests_sent == 1


def test_a_new_run_starts_from_nothing(tmp_path):
    ledger = started(tmp_path, None)
    ledger.add(Decimal("0.25"), ONE)
    ledger.start(cap=Decimal("1"))  # a new run, with a cap: written at once from now on
    ledger.add(Decimal("0.5"), ONE)
    assert in_file(ledger).requests_sent == 1 and ledger.read().spent_usd == Decimal("0.5")


# The copy each process keeps: parsed again only when the file was replaced


def test_a_record_is_parsed_again_only_when_another_writer_replaced_it(tmp_path, monkeypatch):
    ledger = started(tmp_path, Decimal("1"))
    ledger.add(Decimal("0.25"), ONE)
    parsed = []
    original = SpendRecord.model_validate_json

    def counting(data, *args, **kwargs):
        parsed.append(data)
        return original(data, *args, **kwargs)

    monkeypatch.setattr(SpendRecord, "model_validate_json", counting)
    for _ in range(5):
        assert ledger.spent() == Decimal("0.25")
    assert parsed == []  # this process wrote it last: its own copy stands
    worker = multiprocessing.get_context("fork").Process(target=_add_many, args=(ledger.path, 2))
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    assert ledger.spent() == Decimal("0.252") and len(parsed) == 1  # another process's write is seen
    assert ledger.spent() == Decimal("0.252") and len(parsed) == 1
    text = ledger.path.read_text()
    ledger.path.write_text(text.replace('"spent_usd":"0.252"', '"spent_usd":"0.9"'))  # in place
    assert ledger.spent() == Decimal("0.9")
    ledger.path.unlink()
    assert ledger.spent() == 0


def test_a_file_replaced_between_its_identity_and_its_reading_is_read_as_it_was(tmp_path, monkeypatch):
    """The identity is taken from the open file and the content read from it: a writer that
    replaces the file in between cannot make the process keep new content under an old identity
    (or the reverse), so the next read sees the new file."""
    ledger = started(tmp_path, Decimal("1"))
    ledger.add(Decimal("0.25"), ONE)
    other = SpendLedger(ledger.path, ledger.stops_path)
    original = ledger_module._identity
    replaced = []

    def identity_then_replace(fd):
        identity = original(fd)
        if not replaced:
            replaced.append(True)
            record = SpendRecord.model_validate_json(ledger.path.read_bytes())
            record.spent_usd = Decimal("0.75")
            other._write(record)  # another writer renames a new file over the path
            ledger_module._forget(other.key)
        return identity

    ledger_module._forget(ledger.key)
    monkeypatch.setattr(ledger_module, "_identity", identity_then_replace)
    assert ledger.spent() == Decimal("0.25")  # the file that was opened
    assert ledger.spent() == Decimal("0.75")  # then the one that replaced it


def test_a_process_keeps_at_most_a_few_files_open(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    for index in range(40):
        folder = tmp_path / str(index)
        started(folder, Decimal("1")).spent()
    assert len(os.listdir("/proc/self/fd")) - before <= ledger_module._SEEN_MAX


def test_a_record_read_or_written_can_be_changed_without_changing_the_processs_copy(tmp_path):
    ledger = started(tmp_path, Decimal("1"))
    ledger.mark_stopped(tmp_path / "a.json")
    first = ledger.read()
    first.stopped.append("changed by the caller")
    first.spent_usd = Decimal("0.5")
    assert ledger.read().stopped == [str(tmp_path / "a.json")] and ledger.spent() == 0
    record = ledger.start(cap=Decimal("1"))
    record.stopped.append("changed by the caller")
    assert ledger.read().stopped == []
