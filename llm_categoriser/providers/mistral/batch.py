"""Mistral remote jobs through the Batch API: a JSONL file (``purpose=batch``) of
``{"custom_id", "body"}`` lines, ``batch.jobs.create`` naming the model and endpoint, status,
the output and error files, cancel. The life cycle (and the adoption of a live job with the
same display name, looked up by its metadata on the server) is in ``chat_batches.py``.
"""

from __future__ import annotations

from typing import Any

from ..base import Request
from ..chat_batches import ENDPOINT, NAME_FIELD, ChatBatchBackend
from ..chat_completions import chat_body
from .client import MistralProvider

STATES = {
    "QUEUED": "QUEUED",
    "RUNNING": "RUNNING",
    "SUCCESS": "SUCCEEDED",
    "FAILED": "FAILED",
    "TIMEOUT_EXCEEDED": "EXPIRED",
    "CANCELLATION_REQUESTED": "CANCELLING",
    "CANCELLED": "CANCELLED",
}


class MistralBatchBackend(ChatBatchBackend):
    provider_class = MistralProvider
    states = STATES
    create_call = "batch.jobs.create"

    def list_jobs(self, display_name: str) -> list[Any]:
        listed = self.call(
            "batch.jobs.list",
            lambda: self.client.batch.jobs.list(metadata={NAME_FIELD: display_name}, page_size=100),
        )
        return listed.data or []

    def request_line(self, request: Request) -> dict[str, Any]:
        # the job names the model
        body = chat_body(None, request.system, request.user, self.settings.temperature)
        return {"custom_id": request.key, "body": body}

    def upload(self, file_name: str, data: bytes) -> Any:
        return self.call(
            "files.upload",
            lambda: self.client.files.upload(file={"file_name": file_name, "content": data}, purpose="batch"),
        )

    def create_job(self, file_id: str, display_name: str) -> Any:
        return self.client.batch.jobs.create(
            input_files=[file_id],
            endpoint=ENDPOINT,
            model=self.model,
            metadata={NAME_FIELD: display_name},
        )

    def get_job(self, name: str) -> Any:
        return self.call("batch.jobs.get", lambda: self.client.batch.jobs.get(job_id=name))

    def job_error(self, job: Any) -> str:
        return "; ".join(e.message for e in job.errors or [])

    def result_files(self, job: Any) -> tuple[str | None, str | None]:
        return job.error_file, job.output_file

    def download(self, file_id: str) -> bytes:
        return self.call("files.download", lambda: self.client.files.download(file_id=file_id).read())

    def cancel(self, name: str) -> None:
        self.call("batch.jobs.cancel", lambda: self.client.batch.jobs.cancel(job_id=name))
