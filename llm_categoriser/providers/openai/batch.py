"""OpenAI remote jobs through the Batch API: a JSONL file (``purpose=batch``) of chat completion
requests keyed by ``custom_id``, ``batches.create`` with a 24 h window, status, the output and
error files, cancel.

``batches.create`` is never retried blindly: every job carries its deterministic display name
in its metadata, and before creating (and after a failed create) the backend adopts a live job
with that name, so a crash between create and the handle leaves one job, not two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from typing import Any

from ...settings import Settings
from ..base import DEAD_STATES, Answer, Created, ProviderError, Request, Status
from ..chat_completions import chat_body, jsonl, result_answers
from .client import OpenAIProvider, api_key, classify

ENDPOINT = "/v1/chat/completions"
NAME_FIELD = "llm_categoriser_job"
LISTED = 200  # newest jobs searched for a live one to adopt
STATES = {
    "validating": "QUEUED",
    "in_progress": "RUNNING",
    "finalizing": "RUNNING",
    "completed": "SUCCEEDED",
    "failed": "FAILED",
    "expired": "EXPIRED",
    "cancelling": "CANCELLING",
    "cancelled": "CANCELLED",
}


def item_error(line: dict[str, Any]) -> str:
    error = line.get("error") or {}
    if error:
        return f"{error.get('code', '')} {error.get('message', '')}".strip()
    response = line.get("response") or {}
    body = response.get("body") or {}
    detail = body.get("error") if isinstance(body, dict) else None
    message = detail.get("message", "") if isinstance(detail, dict) else ""
    return f"HTTP {response.get('status_code')} {message}".strip()


class OpenAIBatchBackend:
    provider = "openai"

    def __init__(self, settings: Settings, key: str | None = None, client: Any = None) -> None:
        self.settings = settings
        self.model = settings.openai_model
        self._sync = OpenAIProvider(settings, key or api_key(settings), client)
        self.client = self._sync.client

    @property
    def sync_provider(self) -> OpenAIProvider:
        return self._sync

    def find_live(self, display_name: str) -> str | None:
        batches = self._sync.call(
            "batches.list", lambda: list(islice(self.client.batches.list(limit=100), LISTED))
        )
        for batch in batches:
            if (batch.metadata or {}).get(NAME_FIELD) == display_name and STATES.get(
                batch.status
            ) not in DEAD_STATES:
                return str(batch.id)
        return None

    def create(self, display_name: str, requests: list[Request]) -> Created:
        live = self.find_live(display_name)
        if live:
            return Created(live, "adopted", 0, adopted=True)
        data = jsonl(
            [
                {
                    "custom_id": r.key,
                    "method": "POST",
                    "url": ENDPOINT,
                    "body": chat_body(self.model, r.system, r.user, self.settings.temperature),
                }
                for r in requests
            ]
        )
        uploaded = self._sync.call(
            "files.create",
            lambda: self.client.files.create(file=(f"{display_name}.jsonl", data), purpose="batch"),
        )

        def create() -> Any:
            return self.client.batches.create(
                input_file_id=uploaded.id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={NAME_FIELD: display_name},
            )

        try:
            batch = create()
        except Exception as exc:
            failure = classify(exc, self.model)
            if failure.kind in ("fatal", "exhausted"):
                raise ProviderError(failure.message, kind=failure.kind) from None
            # the job may exist although the answer was lost: adopt it rather than duplicate it
            self._sync.sleep(1.0)
            live = self.find_live(display_name)
            if live:
                return Created(live, "file", len(data), adopted=True, file_name=uploaded.id)
            batch = self._sync.call("batches.create", create)
        return Created(str(batch.id), "file", len(data), adopted=False, file_name=uploaded.id)

    def status(self, name: str) -> Status:
        batch = self._sync.call("batches.retrieve", lambda: self.client.batches.retrieve(name))
        state = STATES.get(batch.status, str(batch.status).upper())
        error = ""
        if batch.errors and batch.errors.data:
            error = "; ".join(str(e.message or e.code) for e in batch.errors.data)
        created = datetime.fromtimestamp(batch.created_at, UTC).isoformat() if batch.created_at else None
        return Status(state, error, created)

    def results(self, name: str, requests: list[Request]) -> dict[str, Answer]:
        batch = self._sync.call("batches.retrieve", lambda: self.client.batches.retrieve(name))
        answers: dict[str, Answer] = {}
        for file_id in (batch.error_file_id, batch.output_file_id):  # outputs win over errors
            if file_id:
                data = self._sync.call("files.content", lambda f=file_id: self.client.files.content(f).read())
                answers.update(result_answers(data, item_error))
        return answers

    def cancel(self, name: str) -> None:
        self._sync.call("batches.cancel", lambda: self.client.batches.cancel(name))
