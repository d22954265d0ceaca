"""In-process HTTP emulator of the Mistral API (chat completions, Files, Batch jobs), for tests
and benchmarks. The shared machinery (server, keys, faults, quota, answers, job life cycle) is
in :mod:`support.emulators.chat_api`; this module holds Mistral's routes and wire shapes.

Point the real SDK at it with ``Mistral(api_key="fake", server_url=emu.url)``
(``emu.url`` has no ``/v1``: the SDK's paths carry it). SDK facts this relies on
(``mistralai`` 3.7.0, ``mistralai.client``): the key travels as ``Authorization: Bearer``;
without ``retry_config`` the SDK retries nothing; with one it retries 429, 500, 502, 503
and 504, sleeping ``Retry-After`` / ``retry-after-ms`` when given; every 4xx/5xx raises
``mistralai.client.errors.SDKError`` (``.status_code``, ``.body``), except 422 on chat
(``HTTPValidationError``). ``files.download`` returns the raw ``httpx`` response.

Emulated endpoints:

* ``POST /v1/chat/completions``: ``response_format`` ``json_schema`` (the verdict array is
  wrapped in the schema's array property), ``json_object`` or none (a bare array); ``usage``
  with ``prompt_tokens``, ``completion_tokens``, ``total_tokens``.
* ``POST /v1/files`` (multipart ``file``, ``purpose=batch``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``.
* ``POST /v1/batch/jobs`` (``input_files`` of JSONL ``{"custom_id", "body"}`` lines, or
  inline ``requests``; ``endpoint``, ``model``, ``metadata``, ``timeout_hours``),
  ``GET /v1/batch/jobs/{id}``, ``GET /v1/batch/jobs?page=&page_size=&status=`` (newest
  first, ``{"data", "object": "list", "total"}``), ``POST /v1/batch/jobs/{id}/cancel``
  (``CANCELLATION_REQUESTED``, then ``State.CANCELLED`` on the next read).

Statuses: ``State.QUEUED`` -> ``State.RUNNING`` -> ``SUCCESS`` | ``State.FAILED`` (``errors``) |
``TIMEOUT_EXCEEDED`` (answered items in the output file, the rest in the error file) |
``CANCELLATION_REQUESTED`` -> ``State.CANCELLED``. Output lines are ``{"id", "custom_id",
"response": {"status_code": 200, "body"}, "error": null}``; an item that failed has a non-200
``response`` with an error body, or ``"response": null`` and an ``error`` object. A job
created with inline ``requests`` also returns its lines in ``outputs``.

Faults (``emu.inject``): ``RATE_LIMIT`` (429 ``rate_limited``, code 1300, with
``Retry-After``), ``QUOTA`` (429 with the usage-limit message of a workspace whose monthly
limit is spent), ``SERVER_ERROR`` (500), ``UNAVAILABLE`` (503), and the answer faults. An
invalid key gets 401 ``{"detail": "Unauthorized"}``; an unknown model 400 ``invalid_model``
(code 1500). Bodies follow what the API has been seen to return; the provider classifies by
HTTP status, not by message text.

Standalone (benchmarks): ``cd tests && python -m support.emulators.mistral --port 0 [--latency S]
[--auto-complete] [--quota N]`` prints its base URL and serves until SIGTERM.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
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

__all__ = ["BatchPlan", "Fault", "MistralEmulator"]

_STATUS = {
    State.QUEUED: "QUEUED",
    State.RUNNING: "RUNNING",
    State.COMPLETED: "SUCCESS",
    State.FAILED: "FAILED",
    State.EXPIRED: "TIMEOUT_EXCEEDED",
    State.CANCELLING: "CANCELLATION_REQUESTED",
    State.CANCELLED: "CANCELLED",
}
_ENDPOINTS = ("/v1/chat/completions",)
_LIST_PARAMS = frozenset(
    {"page", "page_size", "model", "agent_id", "created_after", "created_by_me", "status", "order_by"}
)


class MistralEmulator(ChatApiEmulator):
    """A fake Mistral API (see the module docstring)."""

    name = "mistral-emulator"
    batch_path = r"/v1/batch/jobs"
    upload_needs_purpose = False
    default_purpose = "fine-tune"

    @property
    def url(self) -> str:
        """Server URL for ``Mistral(server_url=...)``."""
        return self.root_url

    def _new_id(self, prefix: str) -> str:
        return str(uuid.uuid4())

    def error(self, status: int, kind: str, message: str, **extra: Any) -> Response:
        if kind in ("invalid_key", "missing_key"):
            return Response.json(401, {"detail": "Unauthorized"})
        headers: dict[str, str] = {}
        error_type, code = "invalid_request_error", "3000"
        if kind == "rate_limit":
            message, error_type, code = "Rate limit exceeded", "rate_limited", "1300"
            headers = {"Retry-After": f"{self.retry_after:g}"}
        elif kind == "quota":
            message = "You have reached your monthly usage limit. Raise it in the console to continue."
            error_type, code = "usage_limit_exceeded", "1310"
        elif kind == "server_error":
            message, error_type, code = "Internal server error", "internal_server_error", "1000"
        elif kind == "unavailable":
            message, error_type, code = "Service unavailable", "service_unavailable", "1001"
        elif kind == "unknown_model":
            status, message, error_type, code = 400, f"Invalid model: {message}", "invalid_model", "1500"
        elif kind == "not_found":
            error_type, code = "not_found", "3404"
        return Response.json(
            status,
            {"object": "error", "message": message, "type": error_type, "param": None, "code": code},
            headers,
        )

    # -- files -----------------------------------------------------------------

    def file_json(self, stored: StoredFile) -> dict[str, Any]:
        sample_type = {"input": "batch_request", "output": "batch_result", "error": "batch_error"}
        return {
            "id": stored.id,
            "object": "file",
            "bytes": len(stored.data),
            "created_at": stored.created_at,
            "filename": stored.filename,
            "purpose": stored.purpose,
            "sample_type": sample_type[stored.kind],
            "source": "upload" if stored.kind == "input" else "mistral",
            "num_lines": stored.data.count(b"\n"),
            "mimetype": "application/jsonl",
            "signature": None,
            "expires_at": None,
            "visibility": "workspace",
        }

    def result_purpose(self, kind: str) -> str:
        return "batch"

    # -- batch jobs --------------------------------------------------------------

    def batch_json(self, job: Job) -> dict[str, Any]:
        errors = [{"message": e["message"], "count": 1} for e in job.errors]
        return {
            "id": job.id,
            "object": "batch",
            "input_files": job.input_file_ids,
            "metadata": job.metadata or None,
            "endpoint": job.endpoint,
            "model": job.model,
            "agent_id": None,
            "output_file": job.output_file_id,
            "error_file": job.error_file_id,
            "errors": errors,
            "outputs": job.outputs,
            "status": _STATUS[job.state],
            "created_at": job.created_at,
            "total_requests": len(job.items),
            "completed_requests": job.succeeded + job.failed,
            "succeeded_requests": job.succeeded,
            "failed_requests": job.failed,
            "started_at": job.started_at,
            "completed_at": job.finished_at if job.state in State.FINAL else None,
        }

    def batch_create(self, match: re.Match[str], request: Any) -> Response:
        body = self.json_body(request)
        endpoint = body.get("endpoint")
        if endpoint not in _ENDPOINTS:
            return self.error(400, "bad_request", f"Invalid endpoint {endpoint!r}.")
        metadata = body.get("metadata") or {}
        with self._lock:
            if body.get("requests"):
                items = [
                    Item(str(r.get("custom_id", index)), r.get("body") or {})
                    for index, r in enumerate(body["requests"])
                ]
                file_ids: list[str] = []
                model = body.get("model") or ""
            else:
                file_ids = [str(f) for f in body.get("input_files") or []]
                if not file_ids:
                    return self.error(400, "bad_request", "Either input_files or requests is required.")
                items = []
                model = body.get("model") or ""
                for file_id in file_ids:
                    more, model = self.parse_jsonl(self.get_file(file_id).data, default_model=model)
                    items.extend(more)
            job = self.create_job(
                model=model,
                endpoint=str(endpoint),
                input_file_ids=file_ids,
                items=items,
                metadata=metadata,
                inline=bool(body.get("requests")),
            )
            return Response.json(200, self.batch_json(job))

    def store_results(self, job: Job, outputs: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
        super().store_results(job, outputs, errors)
        if job.inline:
            job.outputs = outputs + errors

    def batch_list(self, match: re.Match[str], request: Any) -> Response:
        page = int((request.query.get("page") or ["0"])[0])
        size = int((request.query.get("page_size") or ["100"])[0])
        statuses = set(request.query.get("status") or [])
        # The SDK sends the metadata filter as one query parameter per pair.
        wanted = {k: v[0] for k, v in request.query.items() if k not in _LIST_PARAMS}
        with self._lock:
            jobs = [
                job
                for job in reversed(self._jobs.values())
                if (not statuses or _STATUS[job.state] in statuses)
                and all(str((job.metadata or {}).get(k)) == v for k, v in wanted.items())
            ]
            chosen = jobs[page * size : (page + 1) * size]
            return Response.json(
                200, {"object": "list", "data": [self.batch_json(j) for j in chosen], "total": len(jobs)}
            )

    def item_output_line(self, item: Item, completion: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self._new_id(""),
            "custom_id": item.custom_id,
            "response": {"status_code": 200, "body": completion},
            "error": None,
        }

    def item_error_line(self, item: Item, kind: str, response: Response | None = None) -> dict[str, Any]:
        line: dict[str, Any] = {"id": self._new_id(""), "custom_id": item.custom_id}
        if kind in ("expired", "cancelled"):
            message = "The job timed out before this request ran." if kind == "expired" else "Cancelled."
            return {**line, "response": None, "error": {"message": message, "code": kind}}
        response = response or self.error(500, "server_error", "")
        return {
            **line,
            "response": {"status_code": response.status, "body": json.loads(response.body)},
            "error": None,
        }


def main(argv: list[str] | None = None) -> int:
    return serve_standalone(MistralEmulator, argv)


if __name__ == "__main__":
    sys.exit(main())
