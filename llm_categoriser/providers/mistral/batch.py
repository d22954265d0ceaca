"""Mistral remote jobs through the Batch API: a JSONL file (``purpose=batch``) of
``{"custom_id", "body"}`` lines, ``batch.jobs.create`` naming the model and endpoint, status,
the output and error files, cancel.

``batch.jobs.create`` is never retried blindly: every job carries its deterministic display
name in its metadata, and before creating (and after a failed create) the backend adopts a
live job with that name (the list is filtered by that metadata on the server).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...settings import Settings
from ..base import DEAD_STATES, Answer, Created, ProviderError, Request, Status
from ..chat_completions import chat_body, jsonl, result_answers
from .client import MistralProvider, api_key, classify

ENDPOINT = "/v1/chat/completions"
NAME_FIELD = "llm_categoriser_job"
STATES = {
    "QUEUED": "QUEUED",
    "RUNNING": "RUNNING",
    "SUCCESS": "SUCCEEDED",
    "FAILED": "FAILED",
    "TIMEOUT_EXCEEDED": "EXPIRED",
    "CANCELLATION_REQUESTED": "CANCELLING",
    "CANCELLED": "CANCELLED",
}


def item_error(line: dict[str, Any]) -> str:
    error = line.get("error") or {}
    if error:
        return f"{error.get('code', '')} {error.get('message', '')}".strip()
    response = line.get("response") or {}
    body = response.get("body") or {}
    message = body.get("message", "") if isinstance(body, dict) else ""
    return f"HTTP {response.get('status_code')} {message}".strip()


class MistralBatchBackend:
    provider = "mistral"

    def __init__(self, settings: Settings, key: str | None = None, client: Any = None) -> None:
        self.settings = settings
        self.model = settings.mistral_model
        self._sync = MistralProvider(settings, key or api_key(), client)
        self.client = self._sync.client

    @property
    def sync_provider(self) -> MistralProvider:
        return self._sync

    def find_live(self, display_name: str) -> str | None:
        listed = self._sync.call(
            "batch.jobs.list",
            lambda: self.client.batch.jobs.list(metadata={NAME_FIELD: display_name}, page_size=100),
        )
        for job in listed.data or []:
            if (job.metadata or {}).get(NAME_FIELD) == display_name and STATES.get(
                job.status
            ) not in DEAD_STATES:
                return str(job.id)
        return None

    def create(self, display_name: str, requests: list[Request]) -> Created:
        live = self.find_live(display_name)
        if live:
            return Created(live, "adopted", 0, adopted=True)
        data = jsonl(
            [
                {"custom_id": r.key, "body": chat_body(None, r.system, r.user, self.settings.temperature)}
                for r in requests
            ]
        )
        uploaded = self._sync.call(
            "files.upload",
            lambda: self.client.files.upload(
                file={"file_name": f"{display_name}.jsonl", "content": data}, purpose="batch"
            ),
        )

        def create() -> Any:
            return self.client.batch.jobs.create(
                input_files=[uploaded.id],
                endpoint=ENDPOINT,
                model=self.model,
                metadata={NAME_FIELD: display_name},
            )

        try:
            job = create()
        except Exception as exc:
            failure = classify(exc, self.model)
            if failure.kind in ("fatal", "exhausted"):
                raise ProviderError(failure.message, kind=failure.kind) from None
            self._sync.sleep(1.0)  # the job may exist although the answer was lost: adopt it
            live = self.find_live(display_name)
            if live:
                return Created(live, "file", len(data), adopted=True, file_name=uploaded.id)
            job = self._sync.call("batch.jobs.create", create)
        return Created(str(job.id), "file", len(data), adopted=False, file_name=uploaded.id)

    def status(self, name: str) -> Status:
        job = self._sync.call("batch.jobs.get", lambda: self.client.batch.jobs.get(job_id=name))
        state = STATES.get(str(job.status), str(job.status).upper())
        error = "; ".join(e.message for e in job.errors or [])
        created = datetime.fromtimestamp(job.created_at, UTC).isoformat() if job.created_at else None
        return Status(state, error, created)

    def results(self, name: str, requests: list[Request]) -> dict[str, Answer]:
        job = self._sync.call("batch.jobs.get", lambda: self.client.batch.jobs.get(job_id=name))
        answers: dict[str, Answer] = {}
        for file_id in (job.error_file, job.output_file):  # outputs win over errors
            if isinstance(file_id, str) and file_id:
                data = self._sync.call(
                    "files.download", lambda f=file_id: self.client.files.download(file_id=f).read()
                )
                answers.update(result_answers(data, item_error))
        return answers

    def cancel(self, name: str) -> None:
        self._sync.call("batch.jobs.cancel", lambda: self.client.batch.jobs.cancel(job_id=name))
