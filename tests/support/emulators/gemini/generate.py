"""``models.generateContent`` of the Gemini emulator: the answer with its usage metadata, the
latency of a realistic API and the per-minute request limit, and the quota error body."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from support.emulators.gemini.answers import (
    apply_answer_fault,
    categories_of,
    count_tokens,
    default_answer,
    parse_issue_rows,
    prompt_of,
    prompt_tokens_of,
    thinking_tokens_of,
)
from support.emulators.gemini.wire import (
    ApiError,
    Fault,
    QueuedFault,
    Response,
    Route,
    json_response,
    parse_json_body,
)


def quota_error(
    per_day: bool,
    model: str,
    *,
    retry_delay: str | None = "2s",
    quota_id: str | None = None,
    quota_value: str | int | None = None,
    free_tier: bool = False,
    message: str | None = None,
) -> ApiError:
    model_id = model.split("/", 1)[-1] if model else "gemini-2.5-flash"
    if free_tier:
        metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    elif per_day:
        metric = "generativelanguage.googleapis.com/generate_requests_per_model_per_day"
    else:
        metric = "generativelanguage.googleapis.com/generate_requests_per_model"
    base_id = (
        "GenerateRequestsPerDayPerProjectPerModel"
        if per_day
        else "GenerateRequestsPerMinutePerProjectPerModel"
    )
    quota_id = quota_id or (base_id + ("-FreeTier" if free_tier else ""))
    if quota_value is None:
        quota_value = (250 if per_day else 10) if free_tier else (10000 if per_day else 1000)
    retry_text = ""
    if retry_delay:
        retry_text = f"\nPlease retry in {retry_delay.rstrip('s')}s."
    message = message or (
        "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your "
        "current usage, head to: https://ai.dev/usage?tab=rate-limit. \n"
        f"* Quota exceeded for metric: {metric}, limit: {quota_value}, "
        f"model: {model_id}{retry_text}"
    )
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model_id},
                    "quotaValue": str(quota_value),
                }
            ],
        },
    ]
    if retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return ApiError(429, message, "RESOURCE_EXHAUSTED", details=details)


class GenerateContentMixin:
    """The ``generateContent`` handler of :class:`~support.emulators.gemini.GeminiEmulator`;
    the state it uses is set up in its ``__init__``."""

    if TYPE_CHECKING:  # provided by GeminiEmulator and the other mixins

        def _take_fault(self, endpoint: str, path: str, *, http: bool) -> QueuedFault | None: ...

    def _answer_text(self, request: Mapping[str, Any]) -> str:
        if self.answer_fn is not None:
            return self.answer_fn(prompt_of(request))
        return default_answer(prompt_of(request), categories_of(request))

    def _generate_response(self, model: str, request: Mapping[str, Any], fault: str | None) -> dict[str, Any]:
        text = self._answer_text(request)
        finish = "STOP"
        if fault is not None and fault != Fault.SAFETY_BLOCK:
            text, finish = apply_answer_fault(fault, text)
        prompt_tokens = prompt_tokens_of(request)
        thinking_tokens = 0 if fault == Fault.SAFETY_BLOCK else thinking_tokens_of(request, prompt_tokens)
        with self._lock:
            self._response_seq += 1
            seq = self._response_seq
        response_id = base64.urlsafe_b64encode(
            hashlib.sha256(f"{seq}:{time.time_ns()}".encode()).digest()[:15]
        ).decode()
        candidate: dict[str, Any]
        if fault == Fault.SAFETY_BLOCK:
            candidate = {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": [
                    {
                        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                        "probability": "HIGH",
                        "blocked": True,
                    }
                ],
            }
            output_tokens = 0
        else:
            candidate = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish,
                "index": 0,
            }
            output_tokens = max(1, count_tokens(text))
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens + output_tokens + thinking_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }
        if output_tokens:
            usage["candidatesTokenCount"] = output_tokens
        if thinking_tokens:
            usage["thoughtsTokenCount"] = thinking_tokens
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model.split("/", 1)[-1],
            "responseId": response_id,
        }

    def _h_generate(self, route: Route, path: str, body: bytes) -> Response:
        request = parse_json_body(body)
        if not request.get("contents"):
            raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified\n")
        self._check_rate(route.model)
        with self._lock:  # accepted: in flight until answered (a refused call is not)
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            fault = self._take_fault(route.endpoint, path, http=False)
            response = self._generate_response(route.model, request, fault.fault if fault else None)
            # only successful answers are delayed: a base latency plus a time per flag of the prompt
            latency = self.latency
            if self.latency_per_item > 0:
                latency += self.latency_per_item * len(parse_issue_rows(prompt_of(request)))
            if latency > 0:
                time.sleep(latency)
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            self._answered_at.append(time.monotonic())
        return json_response(response)

    def _check_rate(self, model: str) -> None:
        """``requests_per_minute``: at most that many generateContent starts per ``rate_window``
        seconds (60 by default); beyond, 429 with the time until a slot frees as RetryInfo."""
        limit = self.requests_per_minute
        if not limit:
            return
        now = time.monotonic()
        with self._lock:
            while self._accepted and self._accepted[0] <= now - self.rate_window:
                self._accepted.popleft()
            if len(self._accepted) >= limit:
                self._rate_limited += 1
                delay = self._accepted[0] + self.rate_window - now
                retry = f"{max(delay, 0.001):.3f}s"
                raise quota_error(False, model, retry_delay=retry, quota_value=limit)
            self._accepted.append(now)

    def answered_at(self) -> list[float]:
        """``time.monotonic()`` of every successful generateContent answer, in order."""
        with self._lock:
            return list(self._answered_at)
