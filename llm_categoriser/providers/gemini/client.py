"""Gemini synchronous calls through the official ``google-genai`` SDK (docs/DESIGN.md §6).

Synchronous calls retry 429 and 5xx answers with exponential backoff, honouring the server's
``RetryInfo.retryDelay`` (the SDK ignores it and retries nothing by itself), and stop the run
with a clear message for an invalid key or a spent per-day quota. A 429 is reported to the
process's request limiter (``limits.py``), which pauses every sender until the retry delay has
passed and slows them down; the limiter also bounds concurrency, requests and tokens per
minute. The key is read from ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY`` when the client is
built, inside the job, and is scrubbed from every message this module produces.
``GOOGLE_GEMINI_BASE_URL`` points the SDK elsewhere (the tests use a loopback emulator).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...limits import limiter_for
from ...settings import Settings
from ..base import VERDICT_FIELDS, Answer, ProviderError, Request, verdict_properties
from ..retries import backoff_delay
from . import SPEC

RESPONSE_SCHEMA: dict[str, Any] = {  # the OpenAPI subset Gemini takes: upper-case type names
    "type": "ARRAY",
    "items": {
        "type": "OBJECT",
        "properties": verdict_properties(str.upper),
        "required": list(VERDICT_FIELDS),
    },
}


def api_key(env: Mapping[str, str] | None = None) -> str:
    return SPEC.required_key(
        "provider gemini needs an API key: export GEMINI_API_KEY=... (or GOOGLE_API_KEY) in the "
        "shell that runs snakemake, or use the offline provider (--config provider=offline).",
        env,
    )


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def _parse_duration(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([\d.]+)\s*s?\s*", value)
        if match:
            return float(match.group(1))
    return None


@dataclass
class ErrorInfo:
    code: int | None
    status: str
    message: str
    retry_delay: float | None = None
    quota_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def daily_quota(self) -> bool:
        return any("perday" in q.lower().replace("_", "") for q in self.quota_ids)

    @property
    def invalid_key(self) -> bool:
        text = f"{self.status} {self.message} {' '.join(self.reasons)}".lower()
        return self.code in (401, 403) or "api_key_invalid" in text or "api key not valid" in text

    @property
    def transient(self) -> bool:
        return self.code is None or self.code == 429 or self.code >= 500 or self.code == 408


def error_info(exc: BaseException) -> ErrorInfo:
    """Classify an SDK or transport error, reading google.rpc details when present."""
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        return ErrorInfo(None, type(exc).__name__, str(exc) or type(exc).__name__)
    details = getattr(exc, "details", None)
    body = details.get("error", details) if isinstance(details, dict) else {}
    info = ErrorInfo(
        code,
        str(body.get("status") or getattr(exc, "status", "") or ""),
        str(body.get("message") or getattr(exc, "message", "") or ""),
    )
    for detail in body.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("RetryInfo"):
            info.retry_delay = _parse_duration(detail.get("retryDelay"))
        elif kind.endswith("QuotaFailure"):
            info.quota_ids += [str(v.get("quotaId", "")) for v in detail.get("violations") or []]
        elif kind.endswith("ErrorInfo"):
            info.reasons.append(str(detail.get("reason", "")))
    return info


MODEL_CALLS = ("generateContent", "batches.create")


def fatal_message(info: ErrorInfo, what: str = "", model: str = "") -> ProviderError | None:
    """The error that stops this provider: fatal (invalid key, unknown model) or exhausted (daily quota)."""
    if info.code == 404 and what in MODEL_CALLS:
        return ProviderError(
            f"Gemini has no model {model!r} (HTTP 404 {info.status}: {info.message[:160]}). Check the "
            f"setting model (config.yaml or --config model=NAME), e.g. gemini-2.5-flash, then rerun.",
            kind="fatal",
        )
    if info.invalid_key:
        return ProviderError(
            f"Gemini rejected the API key (HTTP {info.code} {info.status}). Check the setting "
            f"GEMINI_API_KEY (or GOOGLE_API_KEY) in the environment: create a key at Google AI "
            f"Studio and export it, then rerun.",
            kind="fatal",
        )
    if info.code == 429 and info.daily_quota:
        return ProviderError(
            f"Gemini's per-day quota is spent ({', '.join(info.quota_ids)}). Rerun after the daily "
            f"reset (midnight Pacific time), raise the quota, or use batch mode (--config mode=batch).",
            kind="exhausted",
        )
    return None


def generation_config(settings: Settings, system: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "system_instruction": system,
        "temperature": settings.temperature,
        "response_mime_type": "application/json",
        "response_schema": RESPONSE_SCHEMA,
    }
    if settings.thinking_budget is not None:
        config["thinking_config"] = {"thinking_budget": settings.thinking_budget}
    return config


def rest_request(settings: Settings, system: str, user: str) -> dict[str, Any]:
    """The same request with REST field names, as JSONL batch input needs (docs/DESIGN.md §6)."""
    generation: dict[str, Any] = {
        "temperature": settings.temperature,
        "responseMimeType": "application/json",
        "responseSchema": RESPONSE_SCHEMA,
    }
    if settings.thinking_budget is not None:
        generation["thinkingConfig"] = {"thinkingBudget": settings.thinking_budget}
    return {
        "contents": [{"role": "user", "parts": [{"text": user}]}],
        "systemInstruction": {"parts": [{"text": system}]},
        "generationConfig": generation,
    }


_USAGE_FIELDS = {  # usageMetadata (REST) -> the SDK's attribute and our field
    "promptTokenCount": ("prompt_token_count", "input_tokens"),
    "cachedContentTokenCount": ("cached_content_token_count", "cached_tokens"),
    "candidatesTokenCount": ("candidates_token_count", "output_tokens"),
    "thoughtsTokenCount": ("thoughts_token_count", "thinking_tokens"),
}


def usage_of(usage: Any) -> dict[str, int]:
    """Our usage fields from ``usageMetadata`` (SDK object or REST dict); absent counts are 0."""
    counts = {}
    for rest, (attribute, ours) in _USAGE_FIELDS.items():
        value = usage.get(rest) if isinstance(usage, dict) else getattr(usage, attribute, None)
        counts[ours] = int(value or 0)
    return counts


def response_text(response: Any) -> tuple[str | None, dict[str, int], str]:
    """(text, usage counts, finish reason) of a GenerateContentResponse (SDK object or REST dict)."""
    if isinstance(response, dict):
        candidates = response.get("candidates") or []
        parts = ((candidates[0].get("content") or {}).get("parts") or []) if candidates else []
        text = "".join(p.get("text", "") for p in parts if not p.get("thought")) or None
        finish = str(candidates[0].get("finishReason", "")) if candidates else "no candidates"
        return text, usage_of(response.get("usageMetadata") or {}), finish
    candidates = getattr(response, "candidates", None) or []
    finish = str(getattr(candidates[0], "finish_reason", "") or "") if candidates else "no candidates"
    text = None
    if candidates and candidates[0].content and candidates[0].content.parts:
        text = "".join(p.text or "" for p in candidates[0].content.parts if not getattr(p, "thought", False))
    return text or None, usage_of(getattr(response, "usage_metadata", None)), finish


def connection_limits(settings: Settings) -> Any:
    """The SDK's connection pool keeps a connection open for every request the process may have
    in flight: its default keeps 20, so a run sending 32 at once closed and opened connections
    all the time (docs/DESIGN.md §26)."""
    import httpx2

    return httpx2.Limits(
        max_connections=None,  # the request limiter bounds what is in flight
        max_keepalive_connections=settings.max_concurrent_requests,
    )


def make_client(settings: Settings, key: str) -> Any:
    from google import genai
    from google.genai import types

    timeout_ms = int(settings.request_timeout * 1000)
    options = types.HttpOptions(timeout=timeout_ms, client_args={"limits": connection_limits(settings)})
    return genai.Client(api_key=key, http_options=options)


_clients_lock = threading.Lock()
_clients: dict[tuple[str, float, int, str], Any] = {}


def shared_client(settings: Settings, key: str) -> Any:
    """One SDK client per key, timeout, concurrency and endpoint in the process (jobs run as its threads).

    Building a client costs about 0.1 s of CPU (two SSL contexts); its HTTP connection pool is
    safe to share between threads and is reused across jobs. Kept for the process's life, so
    it is never closed under a caller (docs/DESIGN.md §26).
    """
    ident = (
        hashlib.sha256(key.encode()).hexdigest(),
        settings.request_timeout,
        settings.max_concurrent_requests,
        os.environ.get("GOOGLE_GEMINI_BASE_URL", ""),
    )
    with _clients_lock:
        client = _clients.get(ident)
        if client is None:
            client = _clients[ident] = make_client(settings, key)
        return client


class GeminiProvider:
    name = "gemini"

    def __init__(self, settings: Settings, key: str, client: Any = None) -> None:
        self.settings = settings
        self.model = settings.model
        self._key = key
        # keep the client referenced for the provider's life: a dropped client closes its transport
        self.client = client if client is not None else shared_client(settings, key)
        self.sleep = time.sleep
        self.limiter = limiter_for(settings)  # shared by every job of the process

    @classmethod
    def from_settings(cls, settings: Settings) -> GeminiProvider:
        return cls(settings, api_key())

    def __repr__(self) -> str:  # never show the key
        return f"GeminiProvider(model={self.model!r})"

    def call(self, what: str, fn: Any, retry: bool = True) -> Any:
        """Run ``fn`` with retries on transient errors; ProviderError on fatal ones.

        A fatal answer (invalid key, unknown model, spent daily quota) stops every later call
        of this process with the same endpoint, key and model, without a request; until one
        call has succeeded, calls go one at a time, so a run of parallel jobs meets such an
        answer once, not once per job (docs/DESIGN.md §24). ``retry=False`` makes one attempt
        and re-raises any error that is not fatal.
        """
        gate = _gate(self.model, self._key)
        if not gate.opened(what):
            with gate.lock:
                # checked again under the lock: the calls that queued here while the first one
                # was out go at once, not one after another, when it succeeded
                if not gate.opened(what):
                    return self._call(what, fn, gate, retry)
        return self._call(what, fn, gate, retry)

    def _call(self, what: str, fn: Any, gate: _Gate, retry: bool) -> Any:
        if gate.fatal is not None:
            raise ProviderError(str(gate.fatal), kind=gate.fatal.kind)
        if retry:
            result = self._attempts(what, fn)
        else:
            try:
                result = fn()
            except Exception as exc:
                self.fail_if_fatal(exc, what)
                raise
        gate.key_works = True
        gate.model_works = gate.model_works or what in MODEL_CALLS
        return result

    def fail_if_fatal(self, exc: BaseException, what: str) -> None:
        """Raise ProviderError (and stop later calls) if ``exc`` is an answer no retry can fix."""
        fatal = fatal_message(error_info(exc), what, self.model)
        if fatal is not None:
            _gate(self.model, self._key).fatal = fatal
            raise fatal from None

    def _attempts(self, what: str, fn: Any) -> Any:
        attempts = self.settings.max_request_attempts
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                result = fn()
            except Exception as exc:
                self.fail_if_fatal(exc, what)
                info = error_info(exc)
                last = redact(f"HTTP {info.code} {info.status}: {info.message}".strip(), self._key)
                if info.code is None:
                    last = redact(f"{info.status}: {info.message}", self._key)
                if not info.transient:
                    break
                if attempt == attempts:  # another provider of the chain may take over
                    raise ProviderError(
                        f"{what} failed after {attempt} attempt(s): {last}", "unavailable"
                    ) from None
                if info.code == 429:  # every sender of the process waits and slows down
                    self.limiter.rate_limited(backoff_delay(attempt, info.retry_delay))
                else:
                    self.sleep(backoff_delay(attempt, info.retry_delay))
            else:
                self.limiter.succeeded()
                return result
        raise TransientFailure(f"{what} failed after {attempt} attempt(s): {last}")

    def generate(self, request: Request) -> Answer:
        # The REST body goes through the SDK's own API client (key, endpoint, timeout, errors);
        # models.generate_content would convert the config and its response schema to the same
        # body again on every call, 2.5 times the CPU of the whole request (docs/DESIGN.md §26).
        body = rest_request(self.settings, request.system, request.user)
        path = f"models/{self.model}:generateContent"

        def once() -> Any:
            return json.loads(self.client._api_client.request("post", path, body).body or "{}")

        try:
            response = self.call("generateContent", once)
        except TransientFailure as exc:
            return Answer(text=None, error=str(exc))
        text, usage, finish = response_text(response)
        notes = [] if finish.upper().endswith("STOP") else [f"finish reason {finish}"]
        return Answer(
            text=text,
            **usage,
            notes=notes,
            error="" if text else f"empty answer ({finish})",
        )


@dataclass
class _Gate:
    """Per process, endpoint, key and model: a fatal answer seen, and what has worked so far."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    key_works: bool = False  # a call succeeded
    model_works: bool = False  # a call that names the model succeeded
    fatal: ProviderError | None = None

    def opened(self, what: str) -> bool:
        """Whether a call of ``what`` may go without waiting for the calls before it."""
        return self.key_works and (self.model_works or what not in MODEL_CALLS)


_gates: dict[tuple[str, str, str], _Gate] = {}
_gates_lock = threading.Lock()


def _gate(model: str, key: str) -> _Gate:
    base = os.environ.get("GOOGLE_GEMINI_BASE_URL", "")
    scope = (base, hashlib.sha256(key.encode()).hexdigest(), model)
    with _gates_lock:
        return _gates.setdefault(scope, _Gate())


def forget_fatal_answers() -> None:
    """Forget the fatal answers seen by this process (tests that reuse a key and model)."""
    with _gates_lock:
        _gates.clear()


class TransientFailure(Exception):
    """A request that kept failing with retryable errors until the attempts ran out."""


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
