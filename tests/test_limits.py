"""The request limiter: concurrency, requests and tokens per window, 429 pauses and AIMD pacing.

Windows are shortened (``window=``) so that the tests take a fraction of a second; the checks are
on what happened (how many started in any window, how many were in flight), never on how fast.
The tests of the 429 logic run on a simulated clock (:class:`FakeClock`): waiting advances it,
so they are exact and take no time.
"""

from __future__ import annotations

import itertools
import math
import threading
import time

import pytest

from llm_categoriser.limits import INCREASE_STEPS, Limits, RequestLimiter, shared_limiter


class FakeClock:
    """A clock that moves only when told to; a limiter's wait moves it by the time waited."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def simulated(limits: Limits, window: float = 60.0) -> tuple[RequestLimiter, FakeClock]:
    clock = FakeClock()
    return RequestLimiter(limits, clock=clock, window=window, wait=clock.advance), clock


def run_threads(limiter: RequestLimiter, count: int, tokens: int = 0, hold: float = 0.0) -> list[float]:
    starts: list[float] = []
    lock = threading.Lock()
    in_flight = [0, 0]  # now, peak

    def one() -> None:
        with limiter.slot(tokens):
            with lock:
                starts.append(time.monotonic())
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            time.sleep(hold)
            with lock:
                in_flight[0] -= 1

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_threads.peak = in_flight[1]  # type: ignore[attr-defined]
    return sorted(starts)


def most_in_any_window(starts: list[float], window: float) -> int:
    return max(sum(1 for t in starts if s <= t < s + window) for s in starts)


def test_concurrency_is_bounded_and_reached():
    limiter = RequestLimiter(Limits(max_concurrent=3, requests_per_minute=10_000))
    run_threads(limiter, 12, hold=0.05)
    assert run_threads.peak == 3  # type: ignore[attr-defined]
    assert limiter.stats.peak_in_flight == 3 and limiter.stats.requests == 12


def test_a_release_wakes_one_sender_waiting_for_a_slot_not_all():
    limiter = RequestLimiter(Limits(max_concurrent=2, requests_per_minute=10_000))
    run_threads(limiter, 16, hold=0.02)
    assert run_threads.peak == 2 and limiter.stats.requests == 16  # type: ignore[attr-defined]
    # each of the 14 releases that free a slot for a waiting sender wakes one: waking every
    # waiting sender would be 14 + 13 + ... + 1 = 105 wake-ups
    assert limiter.stats.wakeups <= 2 * 16


def test_requests_per_window_are_bounded():
    window = 0.4
    limiter = RequestLimiter(Limits(max_concurrent=50, requests_per_minute=5), window=window)
    starts = run_threads(limiter, 12)
    assert most_in_any_window(starts, window * 0.99) <= 5
    assert starts[-1] - starts[0] >= 2 * window * 0.99  # 12 requests need three windows


def test_tokens_per_window_are_bounded():
    window = 0.4
    limiter = RequestLimiter(
        Limits(max_concurrent=50, requests_per_minute=1000, tokens_per_minute=100), window=window
    )
    starts = run_threads(limiter, 6, tokens=40)
    assert most_in_any_window(starts, window * 0.99) <= 2  # 2 x 40 fits in 100, 3 x 40 does not
    assert limiter.stats.tokens == 240


def test_a_request_larger_than_the_token_budget_still_goes_alone():
    limits = Limits(max_concurrent=5, requests_per_minute=100, tokens_per_minute=10)
    limiter = RequestLimiter(limits, window=0.2)
    starts = run_threads(limiter, 2, tokens=50)
    assert len(starts) == 2 and starts[1] - starts[0] >= 0.2 * 0.99


def test_a_429_pauses_every_sender_and_paces_them():
    limiter = RequestLimiter(Limits(max_concurrent=10, requests_per_minute=600), window=1.0)
    run_threads(limiter, 5)
    assert limiter.pace is None  # no pacing before the API complains
    paused_at = time.monotonic()
    limiter.rate_limited(0.3)  # returns when the retry may go
    assert time.monotonic() - paused_at >= 0.3 * 0.99
    starts = run_threads(limiter, 4)
    assert limiter.pace is not None and limiter.pace < 600
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.99 / limiter.pace - 0.01  # paced, not a burst
    assert limiter.stats.rate_limited == 1


def test_429s_in_one_burst_decrease_once_and_successes_restore_full_speed():
    limiter = RequestLimiter(Limits(max_concurrent=10, requests_per_minute=6000), window=1.0)
    run_threads(limiter, 20)
    in_flight = threading.Barrier(6)

    def refused() -> None:
        with limiter.slot():
            in_flight.wait()  # six requests out at once, all answered 429
            limiter.rate_limited(0.0)

    threads = [threading.Thread(target=refused) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert limiter.stats.rate_limited == 6
    assert limiter.stats.decreases == 1  # one congestion event
    paced = limiter.pace
    assert paced is not None
    limiter.rate_limited(0.0)  # a retry refused again before the API took any: the same event
    assert limiter.stats.decreases == 1 and limiter.pace == paced
    limiter.succeeded()  # the API took one sent after the decrease ...
    limiter.rate_limited(0.0)  # ... and refuses again: a new event
    assert limiter.stats.decreases == 2
    assert limiter.pace == pytest.approx((paced + 6000 / INCREASE_STEPS) * 0.7)
    for _ in range(1000):
        limiter.succeeded()
    assert limiter.pace is None


def test_shares_divide_the_limits():
    limits = Limits(32, requests_per_minute=2000, tokens_per_minute=3_000_000, min_interval=0.1)
    assert limits.share(1) == limits
    assert limits.share(4) == Limits(8, 500, 750_000, 0.4)
    assert limits.share(100).max_concurrent == 1


def test_one_limiter_per_api_and_limits_in_a_process():
    limits = Limits(max_concurrent=4, requests_per_minute=100)
    a = shared_limiter(("gemini", "m", "url"), limits)
    assert shared_limiter(("gemini", "m", "url"), limits) is a
    assert shared_limiter(("gemini", "other", "url"), limits) is not a
    assert shared_limiter(("gemini", "m", "url"), Limits(max_concurrent=5, requests_per_minute=100)) is not a


def test_a_429_pauses_until_the_slot_the_api_names_frees_then_paces_the_starts():
    limiter, clock = simulated(Limits(max_concurrent=32, requests_per_minute=600))
    for _ in range(30):  # 30 requests in 3 s: 10 a second
        with limiter.slot():
            clock.advance(0.1)
    with limiter.slot():
        limiter.rate_limited(5.0)  # at 3 s: the API's window frees a slot in 5 s
        assert clock() == pytest.approx(8.0)  # the retry goes exactly then
    assert limiter.stats.decreases == 1
    pace = limiter.pace
    assert pace == pytest.approx(0.7 * 31 / 10)  # 0.7 times the last ten seconds' rate
    starts = []
    for _ in range(3):
        with limiter.slot():
            starts.append(clock())
    assert all(b - a == pytest.approx(1 / pace) for a, b in itertools.pairwise(starts))


def test_retries_into_a_still_full_window_are_one_congestion_event():
    """After a pause the retries meet a window that frees one slot at a time: their 429s are
    the same congestion event until the API has taken a request sent after the decrease (the
    first limiter cut the pace again for each of them, down to its floor)."""
    limiter, clock = simulated(Limits(max_concurrent=32, requests_per_minute=600))
    for _ in range(30):
        with limiter.slot():
            clock.advance(0.1)
    with limiter.slot():
        limiter.rate_limited(5.0)
        paced = limiter.pace
        for _ in range(5):  # the retry is refused five more times: the window is still full
            limiter.rate_limited(0.25)
        assert limiter.stats.decreases == 1 and limiter.pace == paced
        # each retry after the slot the API named, and paced (the pace is slower than 1 in 0.25 s)
        assert clock() == pytest.approx(8.0 + 5 / paced)
        limiter.succeeded()  # the API took it
    with limiter.slot():
        limiter.rate_limited(1.0)  # a request sent since is refused: a new event
    assert limiter.stats.decreases == 2
    assert limiter.pace == pytest.approx((paced + 10 / INCREASE_STEPS) * 0.7)


def test_successes_restore_the_configured_rate_step_by_step():
    limiter, clock = simulated(Limits(max_concurrent=32, requests_per_minute=600))
    with limiter.slot():
        clock.advance(1.0)
        limiter.rate_limited(0.0)
    assert limiter.pace is not None
    steps = math.ceil((10 - limiter.pace) / (10 / INCREASE_STEPS))
    for _ in range(steps - 1):
        limiter.succeeded()
    assert limiter.pace is not None and limiter.pace < 10
    limiter.succeeded()
    limiter.succeeded()  # (one more for the rounding of the sum)
    assert limiter.pace is None  # unpaced: the run is bound by the limits again, not a timer
