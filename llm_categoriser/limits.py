"""How fast requests to a model's API may go: one limiter per API, shared by every job of a process
(docs/DESIGN.md §26).

Snakemake runs the ``run:`` jobs of one process as threads, and each ``categorise`` job sends
its batches from a small thread pool, so the limiter is what bounds the whole run: at most
``max_concurrent`` requests in flight, ``requests_per_minute`` and ``tokens_per_minute`` in
any 60 seconds (a burst up to those is allowed, as the APIs allow it). A 429 answer pauses
every sender of the process until the provider's retry delay has passed (the API says when a
slot frees) and paces the starts at 0.7 times the pace (at first: the rate of the last ten
seconds), once per congestion event: a 429 to a request that started before the last decrease,
or before the API has answered any request sent since, is part of that event (the retries that
meet a window still full after a pause); never below ``requests_per_minute / 50`` a minute.
Each success raises the pace by ``requests_per_minute / 50`` a minute (additive increase) until
it reaches ``requests_per_minute / 60`` a second, where pacing stops again (docs/DESIGN.md §26).

``categorise.py`` holds a :meth:`RequestLimiter.slot` around every request of every provider;
a provider calls :meth:`RequestLimiter.rate_limited` when its API says 429 (it returns when
the retry may go) and :meth:`RequestLimiter.succeeded` on an answer. Nothing here knows a
provider.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings

WINDOW = 60.0  # seconds: the APIs count requests and tokens per minute
DECREASE = 0.7  # pace after a 429, as a share of the pace before
INCREASE_STEPS = 50  # successes needed to climb from zero back to the configured pace
MIN_PACE_SHARE = 50  # the pace never goes below requests_per_minute / this, a minute


@dataclass(frozen=True)
class Limits:
    max_concurrent: int
    requests_per_minute: float
    tokens_per_minute: float | None = None
    min_interval: float = 0.0

    def share(self, processes: int) -> Limits:
        """This process's part when ``processes`` processes use the same API at once."""
        if processes <= 1:
            return self
        return Limits(
            max(1, self.max_concurrent // processes),
            self.requests_per_minute / processes,
            self.tokens_per_minute / processes if self.tokens_per_minute else None,
            self.min_interval * processes,
        )


@dataclass
class LimiterStats:
    requests: int = 0
    tokens: int = 0
    rate_limited: int = 0
    decreases: int = 0  # congestion events: 429s that slowed the pace down
    waited: float = 0.0  # seconds spent waiting for a slot, summed over requests
    peak_in_flight: int = 0
    wakeups: int = 0  # times a waiting sender woke up to check again


class RequestLimiter:
    def __init__(
        self,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
        window: float = WINDOW,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        """``clock`` and ``wait`` (block up to that many seconds, or until a slot is released)
        are replaceable so that the logic can be run on a simulated clock."""
        self.limits = limits
        self._clock = clock
        self._window = window
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # the state; senders waiting for a time
        # senders waiting for a request in flight to end: a release wakes one of them, not every
        # sender (docs/DESIGN.md §26)
        self._slot_freed = threading.Condition(lock)
        self._wait = wait if wait is not None else self._cond.wait
        self._wait_slot = wait if wait is not None else self._slot_freed.wait
        self._in_flight = 0
        self._starts: deque[tuple[float, int]] = deque()  # (start, tokens) within the window
        self._window_tokens = 0
        self._next_start = 0.0
        self._paused_until = 0.0
        self._last_decrease = float("-inf")
        self._accepted_since_decrease = True  # a request sent after the last decrease was answered
        self._max_pace = limits.requests_per_minute / window  # requests per second
        self._pace: float | None = None  # not paced until the API says 429
        self._started = threading.local()  # when this thread's current request went out
        self.stats = LimiterStats()

    @property
    def pace(self) -> float | None:
        """Requests per second the limiter currently allows (None: not paced)."""
        return self._pace

    def _wait_needed(self, now: float, tokens: int, new_slot: bool) -> float:
        limits = self.limits
        while self._starts and self._starts[0][0] <= now - self._window:
            self._window_tokens -= self._starts.popleft()[1]
        waits = [self._paused_until - now, self._next_start - now]
        if new_slot and self._in_flight >= limits.max_concurrent:
            waits.append(self._window)  # woken by a release
        rpm = limits.requests_per_minute
        if len(self._starts) >= rpm:
            waits.append(self._starts[int(len(self._starts) - rpm)][0] + self._window - now)
        tpm = limits.tokens_per_minute
        if tpm and self._starts and self._window_tokens + tokens > tpm:
            # wait until enough of the window's tokens have expired (a request larger than the
            # whole budget goes alone, once the window is empty)
            excess, expire_at = self._window_tokens + tokens - tpm, now
            for start, used in self._starts:
                excess -= used
                expire_at = start + self._window
                if excess <= 0:
                    break
            waits.append(expire_at - now)
        return max(waits)

    def _wait_turn(self, tokens: int, new_slot: bool) -> None:
        started = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                wait = self._wait_needed(now, tokens, new_slot)
                if wait <= 0:
                    break
                if new_slot and self._in_flight >= self.limits.max_concurrent:
                    self._wait_slot(wait)  # woken by a release, or when its wait is over
                else:
                    self._wait(wait)
                self.stats.wakeups += 1
            if new_slot:
                self._in_flight += 1
                self.stats.peak_in_flight = max(self.stats.peak_in_flight, self._in_flight)
            self._starts.append((now, tokens))
            self._started.at = now
            self._window_tokens += tokens
            spacing = max(self.limits.min_interval, 1 / self._pace if self._pace else 0.0)
            self._next_start = max(self._next_start, now) + spacing if spacing else now
            self.stats.requests += 1
            self.stats.tokens += tokens
            self.stats.waited += now - started

    def _release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            # one slot is free: one sender waiting for a slot takes it (or, if it must still wait
            # for a time, waits for that and then takes it); those waiting for a time wake by it
            self._slot_freed.notify()

    @contextmanager
    def slot(self, tokens: int = 0) -> Iterator[None]:
        """Hold one request slot for a request estimated at ``tokens`` input tokens."""
        self._wait_turn(tokens, new_slot=True)
        try:
            yield
        finally:
            self._release()

    def rate_limited(self, retry_after: float, tokens: int = 0) -> None:
        """The API answered 429 to a request holding a slot: pause every sender for
        ``retry_after`` seconds, slow down, and return when this request may be sent again."""
        with self._cond:
            now = self._clock()
            self.stats.rate_limited += 1
            self._paused_until = max(self._paused_until, now + max(0.0, retry_after))
            started = getattr(self._started, "at", now)
            if started >= self._last_decrease and self._accepted_since_decrease:  # a new event
                span = self._window / 6  # ten seconds of a minute
                recent = sum(1 for start, _ in self._starts if start > now - span) / span
                # paced already: from the pace (the last seconds may have been a pause)
                current = (
                    self._pace if self._pace is not None else min(self._max_pace, recent or self._max_pace)
                )
                self._pace = max(self._max_pace / MIN_PACE_SHARE, current * DECREASE)
                self._last_decrease = now
                self._accepted_since_decrease = False
                self.stats.decreases += 1
                self._next_start = max(self._next_start, now)
        self._wait_turn(tokens, new_slot=False)

    def succeeded(self) -> None:
        """A request was answered: raise the pace by one step; at the configured rate, stop pacing."""
        with self._cond:
            if getattr(self._started, "at", float("-inf")) >= self._last_decrease:
                self._accepted_since_decrease = True
            if self._pace is not None:
                self._pace += self._max_pace / INCREASE_STEPS
                if self._pace >= self._max_pace:
                    self._pace = None


_registry_lock = threading.Lock()
_registry: dict[tuple[str, ...], RequestLimiter] = {}


def shared_limiter(api: tuple[str, ...], limits: Limits) -> RequestLimiter:
    """The process's limiter for ``api`` (for example provider, model and endpoint).

    Every job of the process that talks to the same API with the same limits shares one
    limiter; a change of limits (a new run in the same process, in tests) gets a new one.
    """
    key = (*api, repr(limits))
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = RequestLimiter(limits)
        return limiter


def limits_of(settings: Settings) -> Limits:
    """This process's limits: the settings' share when ``api_processes`` processes send at once."""
    return Limits(
        max_concurrent=settings.max_concurrent_requests,
        requests_per_minute=settings.requests_per_minute,
        tokens_per_minute=settings.tokens_per_minute,
        min_interval=settings.min_request_interval,
    ).share(settings.api_processes)


def limiter_for(settings: Settings) -> RequestLimiter:
    """The limiter of the configured provider and model in this process (one per API)."""
    return shared_limiter((settings.provider, settings.effective_model), limits_of(settings))


def estimate_tokens(*texts: str) -> int:
    """Input tokens of a prompt, estimated before sending (about four characters a token)."""
    return sum(len(text) for text in texts) // 4 + 1


def forget_limiters() -> None:
    """Drop every shared limiter (a new run in the same process starts afresh; tests)."""
    with _registry_lock:
        _registry.clear()
