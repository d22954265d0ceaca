"""The spend of the current run, shared by all its jobs, and the outputs the cap cut short.

One small JSON file (``SpendRecord``) per workspace. The run's main process starts a new
record when the run starts (``start``); every job, in any thread or process of the run,
adds what each request cost (``add``) and reads the total before it sends the next one
(``spent``). Updates take an exclusive ``flock`` on a lock file beside the record and
replace the record atomically, so concurrent jobs never lose an addition and a reader never
sees half a file. (On a cluster the lock needs a file system with working ``flock``.)

Remote jobs are paid when their answers are fetched, possibly much later: a submission
reserves its estimated cost (``try_commit``), so that the jobs submitted in one run cannot
together pass the cap before any of them reports its usage; the fetch releases it.

A job that stopped at the cap lists its output, and the per-document statistics that depend
on it, in ``stopped``. When the run ends (``onsuccess``/``onerror``), after the CSVs have
shown the flags left as ``over_budget``, ``remove_stopped`` deletes those files and records
the stop, so that the next run redoes exactly those jobs. A run killed before its end leaves
the list, and the next start does the same before Snakemake builds its DAG.

Each process keeps the last record it read or wrote, with the file it came from held open: a
read opens the file and compares its identity (device, inode, size, modification time) with
that copy's, and parses it again only when another writer replaced it. The process that started
a run without a cap keeps its own jobs' additions in memory and writes them when each job ends
(``flush``): nothing decides anything from that total until the run's end (docs/DESIGN.md §31).
"""

from __future__ import annotations

import atexit
import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..atomic import atomic_write_text
from .usage import RunSpend, TokenUsage


class SpendRecord(BaseModel):
    """What the current run has spent so far, from the providers' reported usage."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = ""
    started_at: str = ""
    cap_usd: Decimal | None = None
    estimate: str = ""
    spent_usd: Decimal = Decimal(0)
    committed_usd: Decimal = Decimal(0)  # estimates of remote jobs submitted and not yet fetched
    requests_sent: int = 0
    requests_reused: int = 0
    unpriced_requests: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    stopped: list[str] = Field(default_factory=list, description="outputs cut short by the cap")

    def as_run_spend(self) -> RunSpend:
        return RunSpend(
            requests_sent=self.requests_sent,
            requests_reused=self.requests_reused,
            usage=self.usage,
            cost_usd=float(self.spent_usd),
            unpriced_requests=self.unpriced_requests,
            run_id=self.run_id,
            started_at=self.started_at,
            cap_usd=None if self.cap_usd is None else float(self.cap_usd),
            estimate=self.estimate,
        )


class StopRecord(BaseModel):
    """The last run that stopped at the cap, and the outputs it left to redo."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = ""
    outputs: list[str] = Field(default_factory=list)


def read_spend(path: str | os.PathLike[str]) -> SpendRecord:
    """The spend record in ``path`` (an empty one if there is none or it is unreadable), with the
    additions this process has not written yet (``SpendLedger.flush``)."""
    key = os.path.abspath(path)
    record = _copy(_file_record(key))  # the caller's own: the process's copy stays as read
    waiting = _deferred_of(key)
    if waiting is not None:
        with waiting.lock:
            additions = list(waiting.additions)
        _count(record, additions)
    return record


# requests sent, what they cost (None: no price known) and their usage: one call of ``add``
Addition = tuple[Decimal | None, TokenUsage, int]


def _count(record: SpendRecord, additions: list[Addition]) -> None:
    for cost, usage, requests in additions:
        record.requests_sent += requests
        record.usage = record.usage + usage
        if cost is None:
            record.unpriced_requests += requests
        else:
            record.spent_usd += cost


def _copy(record: SpendRecord) -> SpendRecord:
    """A copy to change: its only mutable field is the list ``stopped``."""
    return record.model_copy(update={"stopped": list(record.stopped)})


# --------------------------------------------------------------------- the copy this process read

Identity = tuple[int, int, int, int]  # device, inode, size, modification time (ns)


@dataclass
class _Seen:
    """The last record read or written at one path, and that file, held open.

    Writers never change a ledger in place: every write renames a new file over it. While this
    process holds the file open, its inode cannot be freed, so no later file at that path can
    have the same device and inode: an equal identity means the same file, hence the same
    content (size and modification time also catch a writer that rewrote it in place).
    """

    fd: int
    identity: Identity
    record: SpendRecord


_seen: dict[str, _Seen] = {}
_seen_lock = threading.Lock()
_SEEN_MAX = 16  # paths remembered per process (each holds a descriptor)


def _identity(fd: int) -> Identity:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _remember(key: str, fd: int, identity: Identity, record: SpendRecord) -> None:
    with _seen_lock:
        old = _seen.pop(key, None)
        _seen[key] = _Seen(fd, identity, record)
        while len(_seen) > _SEEN_MAX:
            _close(_seen.pop(next(iter(_seen))))
    if old is not None:
        _close(old)


def _close(seen: _Seen) -> None:
    with suppress(OSError):
        os.close(seen.fd)


def _forget(key: str) -> None:
    with _seen_lock:
        old = _seen.pop(key, None)
    if old is not None:
        _close(old)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _file_record(key: str) -> SpendRecord:
    """The record in the file ``key`` (absolute) as it is now; parsed only if it changed since
    this process last read or wrote it. Not a copy: use ``_copy`` before changing it."""
    try:
        fd = os.open(key, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        _forget(key)
        return SpendRecord()
    try:
        identity = _identity(fd)
        with _seen_lock:
            seen = _seen.get(key)
            known = seen.record if seen is not None and seen.identity == identity else None
        if known is not None:
            os.close(fd)
            return known
        # read through the descriptor whose identity was taken: the content is that file's, even
        # if another writer has renamed a new file over the path since
        record = SpendRecord.model_validate_json(_read_all(fd))
    except (ValueError, ValidationError):
        os.close(fd)
        return SpendRecord()
    except BaseException:
        os.close(fd)
        raise
    _remember(key, fd, identity, record)
    return record


def _wrote(key: str, record: SpendRecord) -> None:
    """Remember ``record``, just written to ``key`` under the ledger's lock (no writer between)."""
    try:
        fd = os.open(key, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        _forget(key)
        return
    try:
        identity = _identity(fd)
    except BaseException:
        os.close(fd)
        raise
    _remember(key, fd, identity, _copy(record))  # the writer may go on changing its own


# ------------------------------------------------------- additions written when a job ends


@dataclass
class _Deferred:
    """Additions of this process not yet in the file (the run it started has no cap), and the
    ledger that writes them."""

    ledger: SpendLedger
    lock: threading.Lock = field(default_factory=threading.Lock)
    additions: list[Addition] = field(default_factory=list)


_deferred: dict[tuple[int, str], _Deferred] = {}


def _deferred_of(key: str) -> _Deferred | None:
    # per process id: a forked child writes its own additions at once
    return _deferred.get((os.getpid(), key))


@atexit.register
def _flush_at_exit() -> None:
    """Additions still waiting when the process ends (every job flushes its own when it ends)."""
    for (pid, _), waiting in list(_deferred.items()):
        if pid == os.getpid():
            waiting.ledger.flush()


@dataclass
class _Commits:
    """One process's additions to one spend record that wait for a write (``SpendLedger.add``)."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    waiting: list[Addition] = field(default_factory=list)
    writing: bool = False
    next: int = 1  # the number of the write that takes what waits now
    written: int = 0  # the number of the last write done


_commits: dict[tuple[int, str], _Commits] = {}
_commits_lock = threading.Lock()


def _commits_of(path: Path) -> _Commits:
    # per process id too: a forked child must not inherit a write under way in its parent
    key = (os.getpid(), str(path))
    with _commits_lock:
        return _commits.setdefault(key, _Commits())


class SpendLedger:
    """The spend record ``path`` and the record of cap stops ``stops`` (``layout.py`` names both)."""

    def __init__(self, path: str | os.PathLike[str], stops: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.key = os.path.abspath(self.path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.stops_path = Path(stops)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> SpendRecord:
        """The record, with this process's additions not yet written (``flush``)."""
        return read_spend(self.key)

    def _current(self) -> SpendRecord:
        """The record in the file, to change (under the lock)."""
        return _copy(_file_record(self.key))

    def _write(self, record: SpendRecord, durable: bool = True) -> None:
        atomic_write_text(self.path, record.model_dump_json() + "\n", durable)
        _wrote(self.key, record)

    def start(self, cap: Decimal | None, estimate: str = "") -> SpendRecord:
        """Begin a new run: nothing spent yet, nothing stopped.

        Without a cap, the additions of this process (the run's own, whose jobs are its threads)
        wait in memory until their job ends (``flush``): no job decides anything from the
        total, and the total is read only when the run ends, in this process or after every job
        has ended. With a cap every addition is written at once, so every job, in this process
        or another, sees it before its next batch. Another process (a cluster job) always
        writes at once (docs/DESIGN.md §31).
        """
        record = SpendRecord(
            run_id=uuid.uuid4().hex[:12],
            started_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
            cap_usd=cap,
            estimate=estimate,
        )
        with self._locked():
            self._write(record)
            mine = (os.getpid(), self.key)
            if cap is None:
                _deferred[mine] = _Deferred(self)
            else:
                _deferred.pop(mine, None)
        return record

    def defer(self) -> None:
        """From now on this process keeps its additions in memory until ``flush``, as the process
        that started a run without a cap does (the helper process of such a run, whose jobs
        flush when they end: docs/DESIGN.md §31)."""
        _deferred.setdefault((os.getpid(), self.key), _Deferred(self))

    def spent(self) -> Decimal:
        return self.read().spent_usd

    def add(self, cost: Decimal | None, usage: TokenUsage, requests: int = 1) -> None:
        """Record ``requests`` sent with ``usage`` costing ``cost`` (None: no price known); when
        this returns, the addition is in the file, or, in the process that started a run
        without a cap, waits for ``flush``.

        The additions of a process's threads are written together (a group commit): the thread
        that finds no write under way writes every addition waiting, the others wait for the
        write that carries theirs. Under many concurrent requests one rewrite of the file then
        records several answers, not one each (docs/DESIGN.md §31).
        """
        waiting = _deferred_of(self.key)
        if waiting is not None:
            with waiting.lock:
                waiting.additions.append((cost, usage, requests))
            return
        commits = _commits_of(self.path)
        with commits.cond:
            commits.waiting.append((cost, usage, requests))
            mine = commits.next
            while commits.written < mine:
                if commits.writing:
                    commits.cond.wait()
                    continue
                additions, commits.waiting = commits.waiting, []
                number, commits.next = commits.next, commits.next + 1
                commits.writing = True
                commits.cond.release()
                try:
                    self._add_all(additions)
                except BaseException:
                    with commits.cond:  # the next writer retries them; this caller sees the error
                        commits.waiting[:0] = additions
                    raise
                else:
                    with commits.cond:
                        commits.written = number
                finally:
                    commits.cond.acquire()
                    commits.writing = False
                    commits.cond.notify_all()

    def flush(self) -> None:
        """Write the additions of this process that wait in memory (a job ends)."""
        waiting = _deferred_of(self.key)
        if waiting is None:
            return
        with waiting.lock:
            additions, waiting.additions = waiting.additions, []
        if not additions:
            return
        try:
            self._add_all(additions)
        except BaseException:
            with waiting.lock:  # kept for the next flush
                waiting.additions[:0] = additions
            raise

    def _add_all(self, additions: list[Addition]) -> None:
        with self._locked():
            record = self._current()
            _count(record, additions)
            # not fsync'ed: written after every request, and only the run that writes it reads
            # these counts (a power loss ends that run; docs/DESIGN.md §27)
            self._write(record, durable=False)

    def settle(self, additions: list[Addition], release: Decimal) -> SpendRecord:
        """One update for a fetched remote job: its ``additions`` (as ``add`` records each) and
        the end of its reservation ``release``."""
        with self._locked():
            record = self._current()
            _count(record, additions)
            record.committed_usd = max(Decimal(0), record.committed_usd - release)
            self._write(record)
        return record

    def try_commit(self, amount: Decimal, cap: Decimal | None) -> bool:
        """Reserve ``amount`` for a remote job if spent + reserved + ``amount`` stays within
        ``cap`` (one check-and-reserve under the lock, so concurrent submissions cannot both pass)."""
        with self._locked():
            record = self._current()
            if cap is not None and record.spent_usd + record.committed_usd + amount > cap:
                return False
            record.committed_usd += amount
            self._write(record)
        return True

    def release(self, amount: Decimal) -> None:
        """A remote job's reservation ends: its answers are fetched and their cost recorded."""
        with self._locked():
            record = self._current()
            record.committed_usd = max(Decimal(0), record.committed_usd - amount)
            self._write(record)

    def add_reused(self, count: int) -> None:
        """Record ``count`` batches answered from the answer cache (nothing sent)."""
        if count <= 0:
            return
        with self._locked():
            record = self._current()
            record.requests_reused += count
            self._write(record, durable=False)

    def mark_stopped(self, *outputs: str | os.PathLike[str]) -> None:
        """``outputs`` hold (or depend on) flags the cap left unanswered: they are redone."""
        with self._locked():
            record = self._current()
            new = [str(o) for o in outputs if str(o) not in record.stopped]
            if new:
                record.stopped.extend(new)
                self._write(record)

    def ensure_stops_file(self) -> None:
        """Create the record of cap stops (an input of the final rule) if there is none."""
        if not self.stops_path.exists():
            atomic_write_text(self.stops_path, StopRecord().model_dump_json() + "\n")

    def remove_stopped(self) -> list[str]:
        """Delete the outputs the cap cut short, record the stop, forget them; return those deleted.

        Snakemake only redoes a job whose output is missing when a job downstream has to run,
        and a final output that is present and newer than its inputs has not. So the outputs
        cut short are deleted (with the per-document statistics that depend on them), and the
        record of cap stops, an input of the rule that writes the final outputs, gets new
        content: the next run then redoes the final outputs and, for them, exactly the jobs
        that were cut short. Their flags are asked for then; the batches already answered
        come from the answer cache, so nothing is sent twice. A run that stopped nothing
        leaves the record as it was, so an up-to-date workflow stays up to date.
        """
        with self._locked():
            record = self._current()
            if not record.stopped:
                return []
            removed = []
            for output in record.stopped:
                try:
                    os.unlink(output)
                except FileNotFoundError:
                    continue
                removed.append(output)
            stop = StopRecord(run_id=record.run_id or uuid.uuid4().hex[:12], outputs=record.stopped)
            atomic_write_text(self.stops_path, stop.model_dump_json() + "\n")
            record.stopped = []
            self._write(record)
        return removed
