"""Batch jobs of the Gemini emulator: ``batchGenerateContent`` (inline or from an uploaded JSONL
file), ``batches.get/list/cancel/delete``, the job life cycle and the results a plan gives."""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from support.emulators.gemini.wire import (
    BATCH_OUTPUT_TYPE,
    BATCH_TYPE,
    DEFAULT_ITEM_ERROR,
    DEFAULT_JOB_ERROR,
    NOT_FOUND_MESSAGE,
    TERMINAL_STATES,
    ApiError,
    Item,
    Job,
    Response,
    Route,
    StoredFile,
    either_field,
    json_response,
    parse_json_body,
    timestamp,
    utc_now,
)


class BatchesMixin:
    """The batch handlers of :class:`~support.emulators.gemini.GeminiEmulator`;
    the state they use is set up in its ``__init__``."""

    if TYPE_CHECKING:  # provided by GeminiEmulator and the other mixins

        def _generate_response(
            self, model: str, request: Mapping[str, Any], fault: str | None
        ) -> dict[str, Any]: ...

        def _page(self, items: list[Any], query: Mapping[str, str]) -> tuple[list[Any], str | None]: ...

    def _h_batch_create(self, route: Route, body: bytes) -> Response:
        payload = parse_json_body(body)
        batch = payload.get("batch")
        if not isinstance(batch, dict):
            raise ApiError(400, "* BatchGenerateContentRequest.batch: batch is required\n")
        input_config = either_field(batch, "inputConfig", "input_config") or {}
        file_name = either_field(input_config, "fileName", "file_name")
        requests_wrapper = input_config.get("requests")
        items: list[Item] = []
        inline_bytes = 0
        if file_name:
            with self._lock:
                source = self._files.get(file_name)
            if source is None:
                raise ApiError(404, NOT_FOUND_MESSAGE, "NOT_FOUND")
            items = self._items_from_jsonl(source.data)
        elif isinstance(requests_wrapper, dict) and requests_wrapper.get("requests"):
            inline_bytes = len(body)
            with self._lock:
                self._max_inline_bytes = max(self._max_inline_bytes, inline_bytes)
            if inline_bytes > self.max_inline_bytes:
                raise ApiError(
                    400,
                    f"Request payload size exceeds the limit: {self.max_inline_bytes} bytes.",
                )
            for index, entry in enumerate(requests_wrapper["requests"]):
                entry = entry if isinstance(entry, dict) else {}
                metadata = entry.get("metadata")
                key = metadata.get("key") if isinstance(metadata, dict) else None
                request = entry.get("request")
                if not isinstance(request, dict) or not request.get("contents"):
                    raise ApiError(
                        400,
                        f"* BatchGenerateContentRequest.batch.input_config.requests"
                        f".requests[{index}].request.contents: contents is not specified\n",
                    )
                items.append(Item(index, None if key is None else str(key), metadata, request))
        else:
            raise ApiError(
                400,
                "* BatchGenerateContentRequest.batch.input_config: "
                "either requests or file_name must be set\n",
            )
        now = utc_now()
        with self._lock:
            plan = self._plans.take()
            name = f"batches/{secrets.token_hex(10)}"
            job = Job(
                name=name,
                model=route.model,
                display_name=either_field(batch, "displayName", "display_name"),
                create_time=now,
                created_mono=time.monotonic(),
                items=items,
                input_file=file_name or None,
                plan=plan,
                update_time=now,
                request_bytes=len(body),
            )
            self._jobs[name] = job
            self._batch_creations += 1
            return json_response(self._job_wire(job))

    @staticmethod
    def _items_from_jsonl(data: bytes) -> list[Item]:
        items: list[Item] = []
        for line in data.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            index = len(items)
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("line is not a JSON object")
            except ValueError as exc:
                items.append(Item(index, None, None, None, f"Invalid JSON line: {exc}"))
                continue
            key = entry.get("key")
            request = entry.get("request")
            item = Item(index, None if key is None else str(key), None, None)
            if isinstance(request, dict) and request.get("contents"):
                item.request = request
            else:
                item.parse_error = "request.contents is not specified"
            items.append(item)
        return items

    def _job_or_raise(self, name: str) -> Job:
        if not name.startswith("batches/"):
            name = f"batches/{name}"
        job = self._jobs.get(name)
        if job is None:
            raise ApiError(404, NOT_FOUND_MESSAGE, "NOT_FOUND")
        return job

    def _public_job(self, name: str) -> Job:
        try:
            return self._job_or_raise(name)
        except ApiError:
            raise KeyError(name) from None

    def _job_wire(self, job: Job) -> dict[str, Any]:
        total = len(job.items)
        failed = succeeded = 0
        if job.state == "SUCCEEDED" and job.output is not None:
            failed = sum(1 for i in job.items if self._item_failed(job, i))
            succeeded = total - failed
        stats = {
            "requestCount": total,
            "successfulRequestCount": succeeded,
            "failedRequestCount": failed,
            "pendingRequestCount": 0 if job.state in TERMINAL_STATES else total,
        }
        metadata: dict[str, Any] = {
            "@type": BATCH_TYPE,
            "model": job.model,
        }
        if job.display_name is not None:
            metadata["displayName"] = job.display_name
        if job.input_file:
            metadata["inputConfig"] = {"fileName": job.input_file}
        metadata["createTime"] = timestamp(job.create_time)
        if job.end_time is not None:
            metadata["endTime"] = timestamp(job.end_time)
        metadata["updateTime"] = timestamp(job.update_time or job.create_time)
        metadata["batchStats"] = {k: str(v) for k, v in stats.items() if v}
        metadata["state"] = f"BATCH_STATE_{job.state}"
        metadata["name"] = job.name
        if job.output is not None:
            metadata["output"] = job.output
        wire: dict[str, Any] = {"name": job.name, "metadata": metadata}
        if job.state in TERMINAL_STATES:
            wire["done"] = True
            if job.error is not None:
                wire["error"] = job.error
            elif job.output is not None:
                wire["response"] = {"@type": BATCH_OUTPUT_TYPE, **job.output}
        return wire

    @staticmethod
    def _item_failed(job: Job, item: Item) -> bool:
        return item.parse_error is not None or job.plan.item_error(item.key, item.index) is not None

    def _advance(self, job: Job) -> None:
        if job.state == "PENDING":
            job.state = "RUNNING"
            job.update_time = utc_now()
        elif job.state == "RUNNING":
            self._finish(job, job.plan.final_state)

    def _on_read(self, job: Job, *, poll: bool) -> None:
        if job.state in TERMINAL_STATES:
            return
        if poll:
            job.polls += 1
        if self.batch_mode == "per_poll" and poll:
            self._advance(job)
        elif self.batch_mode == "auto":
            elapsed = time.monotonic() - job.created_mono
            by_polls = self.complete_after_polls is not None and job.polls >= self.complete_after_polls
            by_time = self.complete_after_seconds is not None and elapsed >= self.complete_after_seconds
            if by_polls or by_time:
                self._finish(job, job.plan.final_state)
            elif job.state == "PENDING" and (job.polls > 0 or elapsed > 0.05):
                job.state = "RUNNING"
                job.update_time = utc_now()

    def _finish(self, job: Job, state: str) -> None:
        now = utc_now()
        job.state = state
        job.update_time = job.end_time = now
        job.output = None
        job.error = None
        if state == "FAILED":
            job.error = dict(job.plan.error or DEFAULT_JOB_ERROR)
        elif state == "SUCCEEDED":
            job.output = self._build_output(job)

    def _build_output(self, job: Job) -> dict[str, Any]:
        plan = job.plan
        results: list[tuple[Item, dict[str, Any]]] = []
        for item in job.items:
            entry: dict[str, Any]
            error = plan.item_error(item.key, item.index)
            if item.parse_error is not None:
                entry = {"error": {"code": 3, "message": item.parse_error}}
            elif error is not None or item.request is None:
                entry = {"error": error or dict(DEFAULT_ITEM_ERROR)}
            else:
                fault = plan.answer_fault(item.key, item.index)
                entry = {"response": self._generate_response(job.model, item.request, fault)}
                self._batch_items += 1
            results.append((item, entry))
        if plan.shuffle and len(results) > 1:
            shuffled = list(results)
            random.Random(job.name).shuffle(shuffled)
            if [i.index for i, _ in shuffled] == [i.index for i, _ in results]:
                shuffled = shuffled[1:] + shuffled[:1]
            results = shuffled
        if job.input_file is None:
            inlined = []
            for item, entry in results:
                if item.metadata is not None and not plan.drop_metadata:
                    entry = {**entry, "metadata": item.metadata}
                inlined.append(entry)
            return {"inlinedResponses": {"inlinedResponses": inlined}}
        lines = []
        for item, entry in results:
            line: dict[str, Any] = {}
            if item.key is not None and not plan.drop_metadata:
                line["key"] = item.key
            line.update(entry)
            lines.append(json.dumps(line, separators=(",", ":")))
        job_id = job.name.split("/", 1)[1]
        out_name = f"files/batch-{job_id}"
        self._files[out_name] = StoredFile(
            name=out_name,
            display_name=out_name.split("/", 1)[1],
            mime_type="application/jsonl",
            data=("\n".join(lines) + "\n").encode("utf-8"),
            create_time=utc_now(),
            source="GENERATED",
        )
        return {"responsesFile": out_name}

    def _h_batch_get(self, name: str) -> Response:
        with self._lock:
            job = self._job_or_raise(name)
            self._on_read(job, poll=True)
            return json_response(self._job_wire(job))

    def _h_batch_list(self, query: Mapping[str, str]) -> Response:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.create_time)
            for job in jobs:
                self._on_read(job, poll=False)
            page, token = self._page(jobs, query)
            out: dict[str, Any] = {}
            if page:
                out["operations"] = [self._job_wire(j) for j in page]
            if token:
                out["nextPageToken"] = token
            return json_response(out)

    def _h_batch_cancel(self, name: str) -> Response:
        with self._lock:
            job = self._job_or_raise(name)
            if job.state in TERMINAL_STATES:
                raise ApiError(
                    400,
                    f"Batch {job.name} is already in a terminal state (BATCH_STATE_{job.state}).",
                    "FAILED_PRECONDITION",
                )
            self._finish(job, "CANCELLED")
            return json_response({})

    def _h_batch_delete(self, name: str) -> Response:
        with self._lock:
            job = self._job_or_raise(name)
            del self._jobs[job.name]
            return json_response({})
