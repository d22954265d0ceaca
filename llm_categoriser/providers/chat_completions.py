"""What the providers of OpenAI-style chat-completion APIs share (docs/DESIGN.md §6).

Both vendors take ``messages`` plus a ``response_format`` of type ``json_schema`` and answer
``choices[0].message.content``; both batch APIs take JSONL lines keyed by ``custom_id`` and
return output and error files keyed the same way. This module holds that common wire format
and the retry loop; each provider folder keeps what is its own (client, key, error
classification, job states).

The verdicts are asked for as ``{"answers": [...]}``: strict structured output needs an object
at the root, and the category is an enum of the nine categories. :func:`answer_text` unwraps
the array again, so validation sees what it sees from every provider.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ..categories import CATEGORY_NAMES
from .base import Answer, ProviderError

ANSWERS_FIELD = "answers"
T = TypeVar("T")


def verdict_schema() -> dict[str, Any]:
    """The JSON schema of an answer, strict-mode compatible (every field required, no extras)."""
    verdict = {
        "type": "object",
        "properties": {
            "issue_id": {"type": "integer"},
            "error_category": {"type": "string", "enum": list(CATEGORY_NAMES)},
            "confidence_score": {"type": "integer"},
            "reasoning": {"type": "string"},
        },
        "required": ["issue_id", "error_category", "confidence_score", "reasoning"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {ANSWERS_FIELD: {"type": "array", "items": verdict}},
        "required": [ANSWERS_FIELD],
        "additionalProperties": False,
    }


def response_format() -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": "flag_verdicts", "strict": True, "schema": verdict_schema()},
    }


def chat_body(model: str | None, system: str, user: str, temperature: float) -> dict[str, Any]:
    """The body of one chat completion (``model`` None: the batch job names it)."""
    body: dict[str, Any] = {
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "temperature": temperature,
        "response_format": response_format(),
    }
    if model is not None:
        body = {"model": model, **body}
    return body


def answer_text(content: Any) -> str | None:
    """The verdict array as text: ``{"answers": [...]}`` unwrapped; anything else as it came
    (validation repairs or rejects it and says why)."""
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if not isinstance(content, str) or not content.strip():
        return None
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if isinstance(data, dict) and isinstance(data.get(ANSWERS_FIELD), list):
        return json.dumps(data[ANSWERS_FIELD], ensure_ascii=False)
    return content


def completion_answer(completion: dict[str, Any]) -> Answer:
    """An Answer from a chat completion's JSON (a sync response or a batch output line's body).

    Usage: ``input_tokens`` counts the whole prompt (cached part included, as ``cached_tokens``
    says), ``output_tokens`` the visible answer, ``thinking_tokens`` the reasoning tokens the
    vendor bills as output on top of it.
    """
    choices = completion.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    finish = str(choice.get("finish_reason") or ("no choices" if not choices else ""))
    text = answer_text(message.get("content"))
    usage = completion.get("usage") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or {}
    thinking = int(output_details.get("reasoning_tokens") or 0)
    notes = [] if finish == "stop" else [f"finish reason {finish}"]
    refusal = message.get("refusal")
    return Answer(
        text=text,
        error="" if text else (f"refused: {refusal}" if refusal else f"empty answer ({finish})"),
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=max(0, int(usage.get("completion_tokens") or 0) - thinking),
        thinking_tokens=thinking,
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        notes=notes,
    )


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(
        json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines
    ).encode()


def result_answers(data: bytes, error_message: Callable[[dict[str, Any]], str]) -> dict[str, Answer]:
    """``custom_id -> Answer`` of a batch output or error file.

    A line with ``response.status_code == 200`` carries a chat completion; any other line is an
    item error, described by ``error_message(line)``. Lines are matched by ``custom_id``, never
    by position; a line without one is skipped.
    """
    answers: dict[str, Answer] = {}
    for raw in data.decode("utf-8").splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        key = line.get("custom_id") if isinstance(line, dict) else None
        if not isinstance(key, str):
            continue
        response = line.get("response") or {}
        if response.get("status_code") == 200 and isinstance(response.get("body"), dict):
            answers[key] = completion_answer(response["body"])
        else:
            answers[key] = Answer(text=None, error=f"item error: {error_message(line)}")
    return answers


# -- retries -----------------------------------------------------------------------------------

FailureKind = Literal["fatal", "exhausted", "transient", "request"]


@dataclass
class Failure:
    """An SDK error, classified by the provider: ``fatal`` stops the run (invalid key, unknown
    model), ``exhausted`` hands over to the next provider at once (quota spent), ``transient``
    is retried (429, 5xx, unreachable) and becomes ``unavailable`` when the attempts run out,
    ``request`` fails this request only (the flags are asked again or marked failed)."""

    kind: FailureKind
    message: str
    retry_after: float | None = None


class RequestFailed(Exception):
    """A request the server refused for a reason of its own (not worth retrying as is)."""


def backoff_delay(attempt: int, failure: Failure, base: float = 1.0, cap: float = 60.0) -> float:
    if failure.retry_after is not None:
        return min(max(failure.retry_after, 0.0), 600.0)
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def call_with_retries(
    what: str,
    fn: Callable[[], T],
    classify: Callable[[BaseException], Failure],
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn``; retry transient failures with backoff (the server's Retry-After first).

    Raises ProviderError (``fatal`` or ``exhausted``) or RequestFailed; messages never hold
    the key (the classifiers build them from status codes and the vendor's message).
    """
    failure = Failure("transient", "not attempted")
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return fn()
        except Exception as exc:
            failure = classify(exc)
        if failure.kind in ("fatal", "exhausted"):
            raise ProviderError(failure.message, kind=failure.kind)
        if failure.kind == "request":
            raise RequestFailed(f"{what}: {failure.message}")
        if attempt < attempts:
            sleep(backoff_delay(attempt, failure))
    raise ProviderError(
        f"{what} still failing after {max(1, attempts)} attempt(s): {failure.message}", kind="unavailable"
    )


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
