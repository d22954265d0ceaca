"""Batch jobs of the chat-completion emulators: the life cycle (manual or on reads), how a plan
ends a job, its output and error files, the creation of a job from parsed items, and the
status and cancel handlers every vendor shares."""

from __future__ import annotations

import json
import random
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from support.emulators.chat_api.wire import (
    ApiError,
    Item,
    Job,
    Request,
    State,
    StoredFile,
)
from support.emulators.loopback import Response


class BatchJobsMixin:
    """The batch side of :class:`~support.emulators.chat_api.ChatApiEmulator`;
    the state it uses is set up in its ``__init__``."""

    if TYPE_CHECKING:  # provided by ChatApiEmulator and the vendors

        def error(self, status: int, kind: str, message: str, **extra: Any) -> Response: ...

        def check_model(self, model: Any) -> None: ...

        def _completion(self, body: dict[str, Any], model: Any, fault: str | None) -> dict[str, Any]: ...

    # -- job control ---------------------------------------------------------

    def advance(self, job_id: str) -> str:
        """Move a job one step queued -> running -> its planned final state."""
        with self._lock:
            job = self._jobs[job_id]
            self._advance(job)
            return job.state

    def finish(self, job_id: str, state: str | None = None) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.state not in State.FINAL:
                self._finish(job, state or job.plan.final_state)

    def complete_all(self, state: str | None = None) -> list[str]:
        with self._lock:
            done = [job for job in self._jobs.values() if job.state not in State.FINAL]
            for job in done:
                self._finish(job, state or job.plan.final_state)
            return [job.id for job in done]

    def _advance(self, job: Job) -> None:
        if job.state == State.QUEUED:
            job.state = State.RUNNING
            job.started_at = int(time.time())
        elif job.state == State.CANCELLING:
            self._finish(job, State.CANCELLED)
        elif job.state == State.RUNNING:
            self._finish(job, job.plan.final_state)

    def _poll(self, job: Job) -> None:
        """A status read: in ``auto`` mode, jobs move on."""
        job.polls += 1
        if job.state == State.CANCELLING:
            self._finish(job, State.CANCELLED)
        elif self.batch_mode == "auto" and job.state not in State.FINAL:
            if job.polls >= self.complete_after_polls:
                self._finish(job, job.plan.final_state)
            else:
                job.state = State.RUNNING
                job.started_at = job.started_at or int(time.time())

    def _finish(self, job: Job, state: str) -> None:
        job.state = state
        job.finished_at = int(time.time())
        job.started_at = job.started_at or job.finished_at
        if state == State.FAILED:
            job.errors = [{"code": "batch_failed", "message": job.plan.error_message, "line": None}]
            return
        plan = job.plan
        answered = len(job.items)
        if state == State.EXPIRED:
            answered = plan.expire_after
        elif state == State.CANCELLED:
            answered = 0
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(job.items):
            if index >= answered:
                errors.append(
                    self.item_error_line(item, "expired" if state == State.EXPIRED else "cancelled")
                )
                continue
            if index in plan.item_errors or item.custom_id in plan.item_errors:
                errors.append(self.item_error_line(item, "server_error"))
                continue
            fault = plan.answer_faults.get(index) or plan.answer_faults.get(item.custom_id)
            try:
                completion = self._completion(item.body, job.model, fault)
            except ApiError as exc:
                errors.append(self.item_error_line(item, "http", response=exc.response))
                continue
            outputs.append(self.item_output_line(item, completion))
        if plan.shuffle:
            random.Random(job.id).shuffle(outputs)
        job.succeeded, job.failed = len(outputs), len(errors)
        self.store_results(job, outputs, errors)

    def store_results(self, job: Job, outputs: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
        """Write the output and error files of a finished job (vendors may differ)."""
        if outputs:
            job.output_file_id = self._store_result_file(job, outputs, "output")
        if errors:
            job.error_file_id = self._store_result_file(job, errors, "error")

    def _store_result_file(self, job: Job, lines: list[dict[str, Any]], kind: str) -> str:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        stored = self._new_file(f"{job.id}_{kind}.jsonl", self.result_purpose(kind), data, kind)
        return stored.id

    def result_purpose(self, kind: str) -> str:
        return "batch_output"

    def item_output_line(self, item: Item, completion: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def item_error_line(self, item: Item, kind: str, response: Response | None = None) -> dict[str, Any]:
        raise NotImplementedError

    # -- the shared resources --------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{secrets.token_hex(12)}"

    def _new_file(self, filename: str, purpose: str, data: bytes, kind: str = "input") -> StoredFile:
        stored = StoredFile(self._new_id(self.file_prefix), filename, purpose, data, int(time.time()), kind)
        self._files[stored.id] = stored
        return stored

    def get_file(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise ApiError(self.error(404, "not_found", f"No such File object: {file_id}"))
        return stored

    def get_job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(self.error(404, "not_found", f"No batch found with id '{job_id}'."))
        return job

    def create_job(
        self,
        *,
        model: str,
        endpoint: str,
        input_file_ids: list[str],
        items: list[Item],
        metadata: dict[str, Any],
        inline: bool = False,
    ) -> Job:
        self.check_model(model)
        seen: set[str] = set()
        for item in items:
            if item.custom_id in seen:
                raise ApiError(
                    self.error(400, "bad_request", f"Duplicate custom_id {item.custom_id!r} in the input.")
                )
            seen.add(item.custom_id)
        plan = self._plans.take()
        job = Job(
            id=self._new_id(self.job_prefix),
            model=model,
            endpoint=endpoint,
            input_file_ids=input_file_ids,
            items=items,
            metadata=metadata,
            plan=plan,
            created_at=int(time.time()),
            inline=inline,
        )
        self._jobs[job.id] = job
        return job

    def parse_jsonl(self, data: bytes, *, default_model: str | None = None) -> tuple[list[Item], str]:
        """Items of an uploaded batch input file and their model."""
        items: list[Item] = []
        model = default_model
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ApiError(self.error(400, "bad_request", f"Line {number} is not JSON: {exc}")) from exc
            body = record.get("body")
            custom_id = record.get("custom_id")
            if not isinstance(body, dict) or not isinstance(custom_id, str):
                raise ApiError(self.error(400, "bad_request", f"Line {number} needs a custom_id and a body."))
            model = body.get("model") or model
            items.append(Item(custom_id, body))
        if not items:
            raise ApiError(self.error(400, "bad_request", "The input file holds no requests."))
        return items, model or ""

    # -- the handlers every vendor shares ----------------------------------------

    def batch_json(self, job: Job) -> dict[str, Any]:
        """The vendor's wire shape of a job."""
        raise NotImplementedError

    def cancel_refusal(self, job: Job) -> Response | None:
        """The vendor's answer to cancelling a finished job (``None``: the job as it is)."""
        return None

    def _batch_get(self, match: re.Match[str], request: Request) -> Response:
        with self._lock:
            job = self.get_job(match["id"])
            self._poll(job)
            return Response.json(200, self.batch_json(job))

    def _batch_cancel(self, match: re.Match[str], request: Request) -> Response:
        with self._lock:
            job = self.get_job(match["id"])
            if job.state in State.FINAL:
                refusal = self.cancel_refusal(job)
                if refusal is not None:
                    return refusal
            else:
                job.state = State.CANCELLING
            return Response.json(200, self.batch_json(job))
