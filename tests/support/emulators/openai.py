"""In-process HTTP emulator of the OpenAI API (chat completions, Files, Batch), for tests and
benchmarks. The shared machinery (server, keys, faults, quota, answers, job life cycle) is in
:mod:`support.emulators.chat_api`; this module holds OpenAI's routes and wire shapes.

Point the real SDK at it with ``OpenAI(api_key="fake", base_url=emu.url)`` or
``OPENAI_BASE_URL=<emu.url>`` (``emu.url`` ends in ``/v1``, as the SDK's default base URL).
SDK facts this relies on (``openai`` 3.57.0, ``_base_client.py``): the key travels as
``Authorization: Bearer``; the SDK retries 408, 409, 429 and 5xx ``max_retries`` times
(default 2), sleeping ``retry-after-ms`` / ``retry-after`` when given (up to 60 s) and
exponential backoff otherwise; 4xx raise ``openai.APIStatusError`` subclasses
(``AuthenticationError`` 401, ``NotFoundError`` 404, ``RateLimitError`` 429,
``InternalServerError`` 5xx) whose ``.code`` / ``.type`` come from the ``error`` object.

Emulated endpoints:

* ``POST /v1/chat/completions``: ``response_format`` ``json_schema`` (the verdict array is
  wrapped in the schema's array property), ``json_object`` or none (a bare array); ``usage``
  with ``prompt_tokens_details.cached_tokens`` (a repeated system prompt of 1024 tokens or
  more) and ``completion_tokens_details.reasoning_tokens`` (when ``reasoning_effort`` is
  set and not ``none``/``minimal``).
* ``POST /v1/files`` (multipart ``file`` + ``purpose``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``.
* ``POST /v1/batches`` (``input_file_id`` of a ``purpose=batch`` JSONL file of
  ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`` lines,
  ``endpoint``, ``completion_window: "24h"``, ``metadata``), ``GET /v1/batches/{id}``,
  ``GET /v1/batches?limit=&after=`` (newest first, cursor pagination), ``POST
  /v1/batches/{id}/cancel`` (``cancelling``, then ``cancelled`` on the next read).

Statuses: ``validating`` -> ``in_progress`` -> ``completed`` | ``failed`` (``errors.data``)
| ``expired`` (answered items in the output file, the rest ``batch_expired`` in the error
file) | ``cancelling`` -> ``cancelled``. Output lines are ``{"id", "custom_id", "response":
{"status_code": 200, "request_id", "body"}, "error": null}``; a failed item has a non-200
``response`` with an ``error`` body, an expired or cancelled one ``"response": null`` and
``"error": {"code": "batch_expired" | "batch_cancelled", "message"}``.

Faults (``emu.inject``): ``RATE_LIMIT`` (429 ``rate_limit_exceeded``, ``retry-after`` and
``retry-after-ms`` from ``emu.retry_after``), ``QUOTA`` (429 ``insufficient_quota``, as once
the credit or monthly budget is spent), ``SERVER_ERROR`` (500), ``UNAVAILABLE`` (503), and
the answer faults. A key in ``invalid_api_keys`` gets 401 ``invalid_api_key`` (the message
shows the key masked, as the real API does); an unknown model 404 ``model_not_found``.

Standalone (benchmarks): ``cd tests && python -m support.emulators.openai --port 0 [--latency S]
[--auto-complete] [--quota N] [--no-key]`` prints its base URL and serves until SIGTERM;
``GET <root>/_emulator/stats`` returns the counters.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from support.emulators.chat_api import (
    BatchPlan,
    ChatApiEmulator,
    Fault,
    Item,
    Job,
    Response,
    State,
    StoredFile,
    serve_standalone,
)

__all__ = ["BatchPlan", "Fault", "OpenAIEmulator"]

_STATUS = {
    State.QUEUED: "validating",
    State.RUNNING: "in_progress",
    State.COMPLETED: "completed",
    State.FAILED: "failed",
    State.EXPIRED: "expired",
    State.CANCELLING: "cancelling",
    State.CANCELLED: "cancelled",
}
_ENDPOINTS = ("/v1/chat/completions",)


def _mask(key: str) -> str:
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "*" * len(key)


class OpenAIEmulator(ChatApiEmulator):
    """A fake OpenAI API (see the module docstring)."""

    name = "openai-emulator"
    job_prefix = "batch_"
    file_prefix = "file-"

    @property
    def url(self) -> str:
        """Base URL for ``OpenAI(base_url=...)`` / ``OPENAI_BASE_URL``."""
        return self.root_url + "/v1"

    # -- errors --------------------------------------------------------------

    def error(self, status: int, kind: str, message: str, **extra: Any) -> Response:
        headers: dict[str, str] = {}
        code: str | None = None
        error_type = "invalid_request_error"
        if kind == "invalid_key":
            message = (
                f"Incorrect API key provided: {_mask(message)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            code = "invalid_api_key"
        elif kind == "missing_key":
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        elif kind == "rate_limit":
            message = (
                "Rate limit reached for requests per min (RPM): Limit 500, Used 500, Requested 1. "
                f"Please try again in {self.retry_after:g}s."
            )
            error_type, code = "requests", "rate_limit_exceeded"
            headers = {
                "retry-after": f"{self.retry_after:g}",
                "retry-after-ms": str(int(self.retry_after * 1000)),
            }
        elif kind == "quota":
            message = (
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors."
            )
            error_type = code = "insufficient_quota"
        elif kind == "server_error":
            message = "The server had an error while processing your request. Sorry about that!"
            error_type = "server_error"
        elif kind == "unavailable":
            message = "The engine is currently overloaded, please try again later."
            error_type = "server_error"
        elif kind == "unknown_model":
            message = f"The model `{message}` does not exist or you do not have access to it."
            code = "model_not_found"
        return Response.json(
            status,
            {"error": {"message": message, "type": error_type, "param": None, "code": code}},
            headers,
        )

    def usage(self, prompt_tokens: int, completion_tokens: int, cached: int, body: dict[str, Any]) -> dict:
        effort = body.get("reasoning_effort")
        reasoning = {"low": 64, "medium": 256, "high": 1024}.get(str(effort), 0)
        completion_tokens += reasoning
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    # -- files -----------------------------------------------------------------

    def file_json(self, stored: StoredFile) -> dict[str, Any]:
        return {
            "id": stored.id,
            "object": "file",
            "bytes": len(stored.data),
            "created_at": stored.created_at,
            "filename": stored.filename,
            "purpose": stored.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }

    # -- batches ---------------------------------------------------------------

    def batch_json(self, job: Job) -> dict[str, Any]:
        stamp = {
            "in_progress_at": job.started_at if job.state != State.QUEUED else None,
            "finalizing_at": job.finished_at if job.state == State.COMPLETED else None,
            "completed_at": job.finished_at if job.state == State.COMPLETED else None,
            "failed_at": job.finished_at if job.state == State.FAILED else None,
            "expired_at": job.finished_at if job.state == State.EXPIRED else None,
            "cancelled_at": job.finished_at if job.state == State.CANCELLED else None,
        }
        return {
            "id": job.id,
            "object": "batch",
            "endpoint": job.endpoint,
            "model": job.model,
            "errors": {"object": "list", "data": job.errors} if job.errors else None,
            "input_file_id": job.input_file_ids[0],
            "completion_window": "24h",
            "status": _STATUS[job.state],
            "output_file_id": job.output_file_id,
            "error_file_id": job.error_file_id,
            "created_at": job.created_at,
            "expires_at": job.created_at + 24 * 3600,
            "cancelling_at": None,
            **stamp,
            "request_counts": {
                "total": len(job.items),
                "completed": job.succeeded,
                "failed": job.failed,
            },
            "metadata": job.metadata or None,
        }

    def batch_create(self, match: re.Match[str], request: Any) -> Response:
        body = self.json_body(request)
        endpoint = body.get("endpoint")
        if endpoint not in _ENDPOINTS:
            return self.error(400, "bad_request", f"Invalid endpoint {endpoint!r}.")
        if body.get("completion_window") != "24h":
            return self.error(400, "bad_request", "completion_window must be '24h'.")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or len(metadata) > 16:
            return self.error(400, "bad_request", "metadata: at most 16 string pairs.")
        with self._lock:
            stored = self.get_file(str(body.get("input_file_id")))
            if stored.purpose != "batch":
                return self.error(400, "bad_request", "The input file must have purpose 'batch'.")
            items, model = self.parse_jsonl(stored.data)
            for item in items:
                if item.body.get("model") != model:
                    return self.error(400, "bad_request", "Every request of a batch must use one model.")
            job = self.create_job(
                model=model,
                endpoint=str(endpoint),
                input_file_ids=[stored.id],
                items=items,
                metadata=metadata,
            )
            return Response.json(200, self.batch_json(job))

    def batch_list(self, match: re.Match[str], request: Any) -> Response:
        limit = int((request.query.get("limit") or ["20"])[0])
        after = (request.query.get("after") or [None])[0]
        with self._lock:
            jobs = list(reversed(self._jobs.values()))
            if after is not None:
                ids = [job.id for job in jobs]
                jobs = jobs[ids.index(after) + 1 :] if after in ids else []
            page = jobs[:limit]
            data = [self.batch_json(job) for job in page]
            return Response.json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                    "has_more": len(jobs) > limit,
                },
            )

    def cancel_refusal(self, job: Job) -> Response | None:
        return self.error(409, "bad_request", f"Cannot cancel a batch with status '{_STATUS[job.state]}'.")

    def item_output_line(self, item: Item, completion: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self._new_id("batch_req_"),
            "custom_id": item.custom_id,
            "response": {"status_code": 200, "request_id": self._new_id("req_"), "body": completion},
            "error": None,
        }

    def item_error_line(self, item: Item, kind: str, response: Response | None = None) -> dict[str, Any]:
        line: dict[str, Any] = {"id": self._new_id("batch_req_"), "custom_id": item.custom_id}
        if kind in ("expired", "cancelled"):
            message = (
                "This request could not be executed before the completion window expired."
                if kind == "expired"
                else "This request was not executed because the batch was cancelled."
            )
            return {**line, "response": None, "error": {"code": f"batch_{kind}", "message": message}}
        response = response or self.error(500, "server_error", "")
        return {
            **line,
            "response": {
                "status_code": response.status,
                "request_id": self._new_id("req_"),
                "body": json.loads(response.body),
            },
            "error": None,
        }


def main(argv: list[str] | None = None) -> int:
    return serve_standalone(OpenAIEmulator, argv)


if __name__ == "__main__":
    sys.exit(main())
