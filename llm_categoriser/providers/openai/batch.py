"""OpenAI remote jobs through the Batch API: a JSONL file (``purpose=batch``) of chat completion
requests keyed by ``custom_id``, ``batches.create`` with a 24 h window, status, the output and
error files, cancel. The life cycle (and the adoption of a live job with the same display name)
is in ``chat_batches.py``.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from ..base import Request
from ..chat_batches import ENDPOINT, NAME_FIELD, ChatBatchBackend
from ..chat_completions import chat_body
from .client import OpenAIProvider

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


class OpenAIBatchBackend(ChatBatchBackend):
    provider_class = OpenAIProvider
    states = STATES
    create_call = "batches.create"

    def list_jobs(self, display_name: str) -> list[Any]:
        return self.call("batches.list", lambda: list(islice(self.client.batches.list(limit=100), LISTED)))

    def request_line(self, request: Request) -> dict[str, Any]:
        body = chat_body(self.model, request.system, request.user, self.settings.temperature)
        return {"custom_id": request.key, "method": "POST", "url": ENDPOINT, "body": body}

    def upload(self, file_name: str, data: bytes) -> Any:
        return self.call(
            "files.create", lambda: self.client.files.create(file=(file_name, data), purpose="batch")
        )

    def create_job(self, file_id: str, display_name: str) -> Any:
        return self.client.batches.create(
            input_file_id=file_id,
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={NAME_FIELD: display_name},
        )

    def get_job(self, name: str) -> Any:
        return self.call("batches.retrieve", lambda: self.client.batches.retrieve(name))

    def job_error(self, job: Any) -> str:
        errors = job.errors.data if job.errors and job.errors.data else []
        return "; ".join(str(e.message or e.code) for e in errors)

    def result_files(self, job: Any) -> tuple[str | None, str | None]:
        return job.error_file_id, job.output_file_id

    def download(self, file_id: str) -> bytes:
        return self.call("files.content", lambda: self.client.files.content(file_id).read())

    def cancel(self, name: str) -> None:
        self.call("batches.cancel", lambda: self.client.batches.cancel(name))
