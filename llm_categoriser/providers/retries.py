"""How a provider retries a call, and what an SDK error means for the run (docs/DESIGN.md §6).

A provider classifies each error of its SDK as a :class:`Failure`; :func:`call_with_retries`
retries the transient ones with backoff (the server's retry delay first), hands a 429 to the
process's request limiter (``limits.py``: every sender waits and slows down) and turns the
rest into ProviderError or RequestFailed. :func:`backoff_delay` is also the delay of providers
with their own loop.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .base import ProviderError

if TYPE_CHECKING:
    from ..limits import RequestLimiter

T = TypeVar("T")
FailureKind = Literal["fatal", "exhausted", "transient", "request"]


@dataclass
class Failure:
    """An SDK error, classified by the provider: ``fatal`` stops the run (invalid key, unknown
    model), ``exhausted`` hands over to the next provider at once (quota spent), ``transient``
    is retried (429, 5xx, unreachable) and becomes ``unavailable`` when the attempts run out,
    ``request`` fails this request only (the flags are asked again or marked failed).
    ``rate_limited``: the server answered 429 (the limiter pauses every sender)."""

    kind: FailureKind
    message: str
    retry_after: float | None = None
    rate_limited: bool = False


class RequestFailed(Exception):
    """A request the server refused for a reason of its own (not worth retrying as is)."""


def backoff_delay(attempt: int, retry_after: float | None, base: float = 1.0, cap: float = 60.0) -> float:
    """The server's delay (at most ten minutes), else exponential backoff with jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), 600.0)
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def call_with_retries(
    what: str,
    fn: Callable[[], T],
    classify: Callable[[BaseException], Failure],
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RequestLimiter | None = None,
) -> T:
    """Run ``fn``; retry transient failures with backoff (the server's Retry-After first).

    With a ``limiter``, a 429 waits in it (every sender of the process pauses for the delay
    and slows down) instead of in ``sleep``, and an answer tells it that the API answers again.
    Raises ProviderError (``fatal`` or ``exhausted``) or RequestFailed; messages never hold
    the key (the classifiers build them from status codes and the vendor's message).
    """
    failure = Failure("transient", "not attempted")
    for attempt in range(1, max(1, attempts) + 1):
        try:
            result = fn()
        except Exception as exc:
            failure = classify(exc)
        else:
            if limiter is not None:
                limiter.succeeded()
            return result
        if failure.kind in ("fatal", "exhausted"):
            raise ProviderError(failure.message, kind=failure.kind)
        if failure.kind == "request":
            raise RequestFailed(f"{what}: {failure.message}")
        if attempt < attempts:
            delay = backoff_delay(attempt, failure.retry_after)
            if failure.rate_limited and limiter is not None:
                limiter.rate_limited(delay)
            else:
                sleep(delay)
    raise ProviderError(
        f"{what} still failing after {max(1, attempts)} attempt(s): {failure.message}", kind="unavailable"
    )


def http_failure(
    status: int,
    what: str,
    headers: Any,
    *,
    key_rejected: str,
    model_unknown: str | None = None,
    spent: str | None = None,
    retryable: Collection[int] = (408, 429),
) -> Failure:
    """What an HTTP error answer means, with the vendor's own messages: 401/403 stop the run
    with ``key_rejected``; ``model_unknown`` and ``spent``, when the vendor's answer says so,
    stop it or hand over to the next provider; ``retryable`` statuses and 5xx are retried
    after the server's delay (a 429 in the request limiter); any other fails the request."""
    if status in (401, 403):
        return Failure("fatal", key_rejected)
    if model_unknown is not None:
        return Failure("fatal", model_unknown)
    if spent is not None:
        return Failure("exhausted", spent)
    if status in retryable or status >= 500:
        return Failure("transient", what, retry_after_seconds(headers), rate_limited=status == 429)
    return Failure("request", what)


def retry_after_seconds(headers: Any) -> float | None:
    """``retry-after-ms`` or ``retry-after`` (seconds) of an HTTP response, if present."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            continue
    return None


def error_body(text: str | None) -> dict[str, Any]:
    """The JSON error body of a response (``{}`` when it is not JSON)."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
