"""A compact live view of a run: flags done of total, requests sent and answered from the cache,
the running cost and an estimate of the time left.

Snakemake's own per-job lines (rule, input, output, reason, "N of M steps") stay in its log file
(``.snakemake/log/``) and each job's log under ``data/logs/``; on the terminal they are replaced by
one progress bar (redrawn in place where stderr is a terminal) or by a line every
``LINE_SECONDS`` where it is not (CI logs, cluster batch logs). ``--config progress=verbose``
brings Snakemake's per-job lines back. Errors, warnings and the final summary always show.

The numbers come from the result files the jobs write (polled by the main Snakemake process, so
the same view works when the jobs run on cluster nodes with a shared file system): a result file
written during this run counts its flags as done; each of its batches was answered from the
cache when that cache entry is older than the run, and was sent otherwise (its requests and
tokens count, and its estimated cost where the provider is priced). Why our own view and not a
Snakemake logger plugin: docs/DESIGN.md §29.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .layout import Layout

LINE_SECONDS = 20.0
REDRAW_SECONDS = 0.5
BAR_WIDTH = 24
# Snakemake's per-job records and start-up chatter that the compact view keeps off the terminal
# (the "Job stats" table of what will run stays).
_JOB_EVENTS = {
    "job_info",
    "job_started",
    "job_finished",
    "progress",
    "shellcmd",
    "group_info",
    "workflow_started",
    "resources_info",
}
_CHATTER = (
    "Select jobs to execute",
    "Execute ",
    "Using shell:",
    "Provided cores:",
    "Rules claiming more threads",
    "Building DAG of jobs",
    "Assuming unrestricted shared filesystem",
    "host:",
    "Provided resources:",
    "Conda environments:",
)


class CompactFilter(logging.Filter):
    """Keep Snakemake's per-job records off a stream handler (errors always pass).

    ``enabled`` is asked at every record: a dry run (known only once Snakemake executes) keeps
    its job list.
    """

    def __init__(self, enabled: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self.enabled = enabled

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or not self.enabled():
            return True
        event = str(getattr(record, "event", "") or "")
        if event.rsplit(".", 1)[-1].lower() in _JOB_EVENTS:
            return False
        message = record.getMessage() if isinstance(record.msg, str) else ""
        return not message.lstrip().startswith(_CHATTER)


def quieten(logger: logging.Logger, enabled: Callable[[], bool] = lambda: True) -> int:
    """Add ``CompactFilter`` to the logger's stream handlers (not its file handlers)."""
    count = 0
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(CompactFilter(enabled))
            count += 1
    return count


@dataclass(frozen=True)
class FileCount:
    """What one result file contributes."""

    before: bool  # written before this run started
    flags: int = 0
    sent: int = 0  # requests sent for its batches (this run only)
    from_cache: int = 0  # its batches answered from data/cache
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Tally:
    flags_before: int = 0  # in result files that were already there when the run started
    flags_done: int = 0  # in result files written during this run
    sent: int = 0
    from_cache: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressView:
    def __init__(
        self,
        result_files: Iterable[str | os.PathLike[str]],
        total_flags: int,
        layout: Layout,
        prices: tuple[float, float] | None = None,
        stream: TextIO | None = None,
        live: bool | None = None,
        line_seconds: float = LINE_SECONDS,
    ) -> None:
        self.files = [Path(p) for p in result_files]
        self.total = total_flags
        self.layout = layout
        self.prices = prices  # US$ per million input and output tokens; None: not priced
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = REDRAW_SECONDS if self.live else line_seconds
        self.started = time.time()
        self.started_ns = time.time_ns()
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._printed = ""
        self._mtimes: dict[Path, int] = {}
        self._counts: dict[Path, FileCount] = {}

    # -- counting -------------------------------------------------------------------------------

    def _count(self, path: Path, mtime_ns: int) -> FileCount | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # being replaced right now: the next poll reads it
        batches = data["batches"] if isinstance(data, dict) and "batches" in data else [data]
        batches = [b for b in batches if isinstance(b, dict)]
        flags = sum(len(b.get("items", {})) for b in batches)
        if mtime_ns < self.started_ns:
            return FileCount(before=True, flags=flags)
        sent = from_cache = input_tokens = output_tokens = 0
        for batch in batches:
            try:
                cache_mtime = Path(self.layout.cached_answer(batch["fingerprint"])).stat().st_mtime_ns
            except (KeyError, OSError):
                cache_mtime = self.started_ns
            if cache_mtime < self.started_ns:
                from_cache += 1
            else:
                sent += int(batch.get("requests", 0))
                input_tokens += int(batch.get("input_tokens", 0))
                output_tokens += int(batch.get("output_tokens", 0))
        return FileCount(False, flags, sent, from_cache, input_tokens, output_tokens)

    def poll(self) -> Tally:
        """Read the result files that are new or changed since the last poll; return the totals.

        Snakemake touches every output after its job, and a forced rerun rewrites files of an
        earlier run, so a file's count replaces what it counted before.
        """
        with self._lock:
            for path in self.files:
                try:
                    mtime = path.stat().st_mtime_ns
                except OSError:
                    continue
                if self._mtimes.get(path) == mtime:
                    continue
                count = self._count(path, mtime)
                if count is not None:
                    self._mtimes[path] = mtime
                    self._counts[path] = count
            tally = Tally()
            for count in self._counts.values():
                if count.before:
                    tally.flags_before += count.flags
                    continue
                tally.flags_done += count.flags
                tally.sent += count.sent
                tally.from_cache += count.from_cache
                tally.input_tokens += count.input_tokens
                tally.output_tokens += count.output_tokens
            self.tally = tally
            return tally

    # -- showing --------------------------------------------------------------------------------

    def cost(self) -> float | None:
        if self.prices is None:
            return None
        return (self.tally.input_tokens * self.prices[0] + self.tally.output_tokens * self.prices[1]) / 1e6

    def line(self) -> str:
        t = self.tally
        done = min(t.flags_before + t.flags_done, self.total)
        share = done / self.total if self.total else 1.0
        parts = [f"{done:,}/{self.total:,} flags ({share:.0%})"]
        parts.append(f"{t.sent:,} request(s) sent, {t.from_cache:,} batch(es) from the cache")
        cost = self.cost()
        if cost is not None:
            parts.append(f"${cost:.2f} so far")
        elapsed = time.time() - self.started
        left = self.total - done
        if left <= 0:
            parts.append(f"{duration(elapsed)} elapsed")
        elif t.flags_done and elapsed > 2:
            parts.append(f"about {duration(left * elapsed / t.flags_done)} left")
        text = " · ".join(parts)
        if self.live:
            filled = round(BAR_WIDTH * share)
            return f"\r{'█' * filled}{'░' * (BAR_WIDTH - filled)} {text}\x1b[K"
        return f"progress: {text}\n"

    def show(self) -> None:
        text = self.line()
        if text != self._printed or not self.live:
            self.stream.write(text)
            self.stream.flush()
            self._printed = text

    def _loop(self) -> None:
        next_line = time.monotonic() + (0 if self.live else self.interval)
        while not self._stop.wait(REDRAW_SECONDS):
            self.poll()
            if time.monotonic() >= next_line:
                self.show()
                next_line = time.monotonic() + self.interval

    def start(self) -> ProgressView:
        self.poll()
        self._thread = threading.Thread(target=self._loop, name="llm-categoriser-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and print the final state (ends the live line)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.poll()
        self.show()
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
