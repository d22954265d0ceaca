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
from typing import Any

from ...errors import ProviderError
from ...settings import Settings
from ..base import DEAD_STATES, Answer, Created, Request, Status
from .client import GeminiProvider, api_key, dumps, generation_config, response_text, rest_request


def normalise_state(state: Any) -> str:
    """``JOB_STATE_RUNNING`` (SDK) and ``BATCH_STATE_RUNNING`` (wire) are both ``RUNNING``."""
    text = str(getattr(state, "value", state) or "UNSPECIFIED").upper()
    return text.split("_STATE_")[-1] if "_STATE_" in text else text


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
        base = os.environ.get("GOOGLE_GEMINI_BASE_URL", "default")
        with _listing_lock:
            cached = _listing.get(base)
            if cached and not refresh and time.monotonic() - cached[0] < LISTING_TTL:
                return cached[1]
            found: dict[str, tuple[str, str]] = {}

            def listing() -> Any:
                return list(self.client.batches.list(config={"page_size": 100}))

            for job in self._sync.call("batches.list", listing):
                if job.display_name and job.name:
                    state = normalise_state(job.state)
                    if job.display_name not in found or state not in DEAD_STATES:
                        found[job.display_name] = (job.name, state)
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
        inline = [
            {
                "contents": [{"role": "user", "parts": [{"text": r.user}]}],
                "config": generation_config(self.settings, r.system),
                "metadata": {"key": r.key},
            }
            for r in requests
        ]
        size = len(dumps(inline).encode("utf-8"))
        file_name = None
        if size <= self.settings.max_inline_bytes:
            src: Any = inline
            transport = "inline"
        else:
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
            src, transport = file_name, "file"

        def create() -> Any:
            return self.client.batches.create(
                model=self.model, src=src, config={"display_name": display_name}
            )

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
        self._remember(display_name, job.name)
        return Created(job.name, transport, size, adopted=False, file_name=file_name)

    def _raw(self, name: str) -> dict[str, Any]:
        """The raw operation JSON: the SDK drops the job's top-level ``error`` (docs/DESIGN.md §7)."""
        response = self.client._api_client.request("get", name, {})
        return json.loads(response.body or "{}")

    def status(self, name: str) -> Status:
        job = self._sync.call("batches.get", lambda: self.client.batches.get(name=name))
        state = normalise_state(job.state)
        error = ""
        if state in DEAD_STATES:
            try:
                raw = self._raw(name)
                detail = raw.get("error") or (raw.get("metadata") or {}).get("error") or {}
                error = str(detail.get("message") or "")
            except Exception:  # the detail is a courtesy; the state is what matters
                error = ""
        created = job.create_time.isoformat() if getattr(job, "create_time", None) else None
        return Status(state, error, created)

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
        job = self._sync.call("batches.get", lambda: self.client.batches.get(name=name))
        dest = job.dest
        answers: dict[str, Answer] = {}
        keys = [r.key for r in requests]
        if dest is not None and dest.inlined_responses:
            unkeyed: list[Any] = []
            for item in dest.inlined_responses:
                key = (item.metadata or {}).get("key") if item.metadata else None
                if key is None:
                    unkeyed.append(item)
                    continue
                answers[key] = self._inline_answer(item)
            if unkeyed and len(dest.inlined_responses) == len(keys) and not answers:
                # no metadata at all: position is the only link, and only if nothing is missing
                for key, item in zip(keys, unkeyed, strict=True):
                    answers[key] = self._inline_answer(item)
                    answers[key].notes.append("matched by position (no metadata in the response)")
        elif dest is not None and dest.file_name:
            data = self._sync.call("files.download", lambda: self.client.files.download(file=dest.file_name))
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
    def _inline_answer(item: Any) -> Answer:
        if item.error is not None:
            return Answer(text=None, error=f"item error {item.error.code}: {item.error.message}")
        text, usage, finish = response_text(item.response)
        return Answer(text=text, **usage, error="" if text else f"empty answer ({finish})")

    def cancel(self, name: str) -> None:
        self._sync.call("batches.cancel", lambda: self.client.batches.cancel(name=name))
