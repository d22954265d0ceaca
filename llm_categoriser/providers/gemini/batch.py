"""Gemini remote jobs through the Batch API (docs/DESIGN.md §7).

A job is created from many requests (each with a key), inline up to ``max_inline_bytes`` and
as an uploaded JSONL file beyond; its state is polled, its answers returned by key, and it can
be cancelled. ``batches.create`` is never retried blindly: on any error the backend first
looks for a live job with the same deterministic display name and adopts it.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter, ValidationError

from ...errors import ProviderError
from ...settings import Settings
from ..base import DEAD_STATES, Answer, Created, Request, Status
from .client import GeminiProvider, api_key, dumps, response_text, rest_request


def normalise_state(state: Any) -> str:
    """``JOB_STATE_RUNNING`` (SDK) and ``BATCH_STATE_RUNNING`` (wire) are both ``RUNNING``."""
    text = str(getattr(state, "value", state) or "UNSPECIFIED").upper()
    return text.split("_STATE_")[-1] if "_STATE_" in text else text


def _base_url() -> str:
    return os.environ.get("GOOGLE_GEMINI_BASE_URL", "default")


def _json(response: Any) -> dict[str, Any]:
    data = json.loads(response.body or "{}")
    return data if isinstance(data, dict) else {}


def _metadata(raw: dict[str, Any]) -> dict[str, Any]:
    metadata = raw.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _state_of(raw: dict[str, Any]) -> str:
    return normalise_state(_metadata(raw).get("state"))


_TIME = TypeAdapter(datetime)


def _timestamp(value: Any) -> str | None:
    """An RFC 3339 time of the API (``...T12:00:00.123456789Z``) as ``datetime.isoformat`` gives
    it (read as the SDK reads it, with pydantic)."""
    try:
        return _TIME.validate_python(value).isoformat() if value else None
    except ValidationError:
        return None


def sent_json(body: dict[str, Any]) -> str:
    """``body`` as the SDK's API client sends it (``json.dumps`` with its defaults: ASCII only,
    other characters escaped), so a size limit is checked against the bytes the API receives."""
    return json.dumps(body)


_succeeded_lock = threading.Lock()
# a succeeded job as its status check read it, until its answers are read: one download, not two
_succeeded: dict[tuple[str, str], dict[str, Any]] = {}
_listing_lock = threading.Lock()
_listing: dict[str, tuple[float, dict[str, tuple[str, str]]]] = {}
LISTING_TTL = 30.0


class GeminiBatchBackend:
    provider = "gemini"

    def __init__(self, settings: Settings, key: str | None = None, client: Any = None) -> None:
        self.settings = settings
        self.model = settings.model
        self._sync = GeminiProvider(settings, key or api_key(), client)
        self.client = self._sync.client

    @property
    def sync_provider(self) -> GeminiProvider:
        return self._sync

    def _jobs_by_display_name(self, refresh: bool = False) -> dict[str, tuple[str, str]]:
        """display name -> (job name, state), listed at most every LISTING_TTL s per process."""
        base = _base_url()
        with _listing_lock:
            cached = _listing.get(base)
            if cached and not refresh and time.monotonic() - cached[0] < LISTING_TTL:
                return cached[1]
            found: dict[str, tuple[str, str]] = {}

            def listing() -> list[dict[str, Any]]:
                # raw pages: the SDK would build a model of every answer of every finished job
                jobs: list[dict[str, Any]] = []
                token = ""
                while True:
                    path = "batches?pageSize=100" + (f"&pageToken={quote(token)}" if token else "")
                    page = _json(self.client._api_client.request("get", path, {}))
                    jobs += [j for j in page.get("operations") or [] if isinstance(j, dict)]
                    token = str(page.get("nextPageToken") or "")
                    if not token:
                        return jobs

            for job in self._sync.call("batches.list", listing):
                display_name, name = _metadata(job).get("displayName"), job.get("name")
                if display_name and name:
                    state = _state_of(job)
                    if display_name not in found or state not in DEAD_STATES:
                        found[display_name] = (name, state)
            _listing[base] = (time.monotonic(), found)
            return found

    def _remember(self, display_name: str, name: str) -> None:
        with _listing_lock:
            for _, jobs in _listing.values():
                jobs[display_name] = (name, "PENDING")

    def find_live(self, display_name: str, refresh: bool = False) -> str | None:
        found = self._jobs_by_display_name(refresh).get(display_name)
        if found and found[1] not in DEAD_STATES:
            return found[0]
        return None

    def create(self, display_name: str, requests: list[Request]) -> Created:
        live = self.find_live(display_name)
        if live:
            return Created(live, "adopted", 0, adopted=True)
        # REST bodies sent through the SDK's own API client (key, endpoint, timeout, errors), as
        # in sync mode: batches.create would convert every request's config and response schema
        # again, most of the CPU of a submission (docs/DESIGN.md §7)
        inline = [
            {"request": rest_request(self.settings, r.system, r.user), "metadata": {"key": r.key}}
            for r in requests
        ]
        source: dict[str, Any] = {"requests": {"requests": inline}}
        size = len(sent_json({"batch": {"displayName": display_name, "inputConfig": source}}))
        file_name, transport = None, "inline"
        if size > self.settings.max_inline_bytes:
            lines = [
                dumps({"key": r.key, "request": rest_request(self.settings, r.system, r.user)})
                for r in requests
            ]
            data = ("\n".join(lines) + "\n").encode("utf-8")
            size = len(data)
            uploaded = self._sync.call(
                "files.upload",
                lambda: self.client.files.upload(
                    file=io.BytesIO(data), config={"mime_type": "jsonl", "display_name": display_name}
                ),
            )
            file_name = uploaded.name
            source, transport = {"fileName": file_name}, "file"
        body = {"batch": {"displayName": display_name, "inputConfig": source}}
        path = f"models/{self.model}:batchGenerateContent"

        def create() -> dict[str, Any]:
            return _json(self.client._api_client.request("post", path, body))

        try:
            job = self._sync.call("batches.create", create, retry=False)
        except ProviderError:  # an answer no retry can fix (unknown model, invalid key)
            raise
        except Exception:
            # never retry create blindly: the job may exist although the answer was lost
            time.sleep(1.0)
            live = self.find_live(display_name, refresh=True)
            if live:
                return Created(live, transport, size, adopted=True, file_name=file_name)
            job = self._sync.call("batches.create", create)
        self._remember(display_name, job["name"])
        return Created(job["name"], transport, size, adopted=False, file_name=file_name)

    def _raw(self, name: str) -> dict[str, Any]:
        """The job as the API sends it: the SDK's model of it drops the job's ``error`` and
        ``batchStats``, and building it from a finished job's answers costs more than reading
        them (docs/DESIGN.md §7)."""
        return _json(self.client._api_client.request("get", name, {}))

    def status(self, name: str) -> Status:
        raw = self._sync.call("batches.get", lambda: self._raw(name))
        state = _state_of(raw)
        if state == "SUCCEEDED":
            with _succeeded_lock:
                _succeeded[(_base_url(), name)] = raw
        error = ""
        if state in DEAD_STATES:
            detail = raw.get("error") or _metadata(raw).get("error") or {}
            error = str(detail.get("message") or "") if isinstance(detail, dict) else ""
        return Status(state, error, _timestamp(_metadata(raw).get("createTime")))

    def progress(self, name: str) -> dict[str, int] | None:
        """Requests done so far, from the raw job (the SDK drops ``batchStats``)."""
        raw = self._sync.call("batches.get", lambda: self._raw(name))
        stats = (raw.get("metadata") or {}).get("batchStats")
        if not isinstance(stats, dict):
            return None
        fields = {
            "total": "requestCount",
            "succeeded": "successfulRequestCount",
            "failed": "failedRequestCount",
            "pending": "pendingRequestCount",
        }
        return {ours: int(stats.get(theirs) or 0) for ours, theirs in fields.items()}

    def results(self, name: str, requests: list[Request]) -> dict[str, Answer]:
        with _succeeded_lock:
            raw = _succeeded.pop((_base_url(), name), None)
        if raw is None:
            raw = self._sync.call("batches.get", lambda: self._raw(name))
        output = _metadata(raw).get("output") or {}
        inlined = (output.get("inlinedResponses") or {}).get("inlinedResponses")
        answers: dict[str, Answer] = {}
        keys = [r.key for r in requests]
        if inlined:
            unkeyed: list[Any] = []
            for item in inlined:
                key = (item.get("metadata") or {}).get("key")
                if key is None:
                    unkeyed.append(item)
                    continue
                answers[key] = self._inline_answer(item)
            if unkeyed and len(inlined) == len(keys) and not answers:
                # no metadata at all: position is the only link, and only if nothing is missing
                for key, item in zip(keys, unkeyed, strict=True):
                    answers[key] = self._inline_answer(item)
                    answers[key].notes.append("matched by position (no metadata in the response)")
        elif output.get("responsesFile"):
            file_name = output["responsesFile"]
            data = self._sync.call("files.download", lambda: self.client.files.download(file=file_name))
            for line in data.decode("utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                key = record.get("key")
                if key is None:
                    continue
                if record.get("error"):
                    answers[key] = Answer(
                        text=None, error=f"item error: {record['error'].get('message', '')}"
                    )
                else:
                    text, usage, finish = response_text(record.get("response") or {})
                    answers[key] = Answer(
                        text=text,
                        **usage,
                        error="" if text else f"empty answer ({finish})",
                    )
        return answers

    @staticmethod
    def _inline_answer(item: dict[str, Any]) -> Answer:
        error = item.get("error")
        if error is not None:
            return Answer(text=None, error=f"item error {error.get('code')}: {error.get('message')}")
        text, usage, finish = response_text(item.get("response") or {})
        return Answer(text=text, **usage, error="" if text else f"empty answer ({finish})")

    def cancel(self, name: str) -> None:
        self._sync.call("batches.cancel", lambda: self.client.batches.cancel(name=name))
