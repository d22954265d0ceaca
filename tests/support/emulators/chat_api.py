"""Shared machinery of the loopback emulators of chat-completion APIs (OpenAI, Mistral).

Both vendors speak the same shape of HTTP API: ``POST /v1/chat/completions``, a Files API
(multipart upload, ``GET /v1/files/{id}/content``) and a Batch API over uploaded JSONL files
whose results come back as output and error files keyed by ``custom_id``. This module holds
what is common: a threaded HTTP server on 127.0.0.1 (ephemeral port by default), API-key
checks, injectable faults, deterministic answers (the same verdicts as the Gemini emulator,
:func:`support.emulators.gemini.default_answer`), a per-day quota that runs out after N answers,
request recording (to grep for leaked secrets) and counters. The vendor modules
(``support.emulators.openai``, ``support.emulators.mistral``) add their routes, wire shapes and error bodies.

Only the Python standard library is used. Everything a test may change is a plain attribute
or a method; every public method is thread-safe.

Batch job life cycle (``batch_mode``):

* ``"manual"`` (default): jobs stay queued until the test calls ``emu.advance(job_id)``,
  ``emu.finish(job_id)`` or ``emu.complete_all()``.
* ``"auto"``: a job finishes on the ``complete_after_polls``-th status read (running before).

How a job ends comes from a :class:`BatchPlan` (``emu.plan_next_batch(...)`` for the next
job created, ``emu.set_default_batch_plan(...)`` for all): ``final_state`` (``completed``,
``failed``, ``expired``, ``cancelled``), ``item_errors`` (items answered with an error line
instead of an output line), ``answer_faults`` (per-item corrupted answers), ``expire_after``
(an expired job answers only its first N items; the rest get the vendor's expiry error),
``shuffle`` (output lines in another order). Items are addressed by ``custom_id`` (str) or
0-based position (int).
"""

from __future__ import annotations

import json
import math
import random
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.emulators.gemini import CATEGORIES, default_answer
from support.emulators.loopback import LoopbackServer, Response

__all__ = [
    "CATEGORIES",
    "BatchPlan",
    "ChatApiEmulator",
    "Fault",
    "RecordedRequest",
    "Response",
]


class Fault:
    """Names of the injectable faults (plain strings)."""

    RATE_LIMIT = "rate_limit"  # 429 with Retry-After: retry later
    QUOTA = "quota"  # 429 quota spent: no retry helps before the reset
    SERVER_ERROR = "server_error"  # 500
    UNAVAILABLE = "unavailable"  # 503 (overloaded)
    MALFORMED_JSON = "malformed_json"
    TRUNCATED_JSON = "truncated_json"  # finish_reason "length"
    MISSING_IDS = "missing_ids"  # last verdict dropped
    UNKNOWN_IDS = "unknown_ids"  # an extra verdict for an id not in the prompt

    HTTP: frozenset[str] = frozenset({RATE_LIMIT, QUOTA, SERVER_ERROR, UNAVAILABLE})
    ANSWER: frozenset[str] = frozenset({MALFORMED_JSON, TRUNCATED_JSON, MISSING_IDS, UNKNOWN_IDS})


# Generic job states; each vendor renders them with its own names.
QUEUED, RUNNING, COMPLETED, FAILED, EXPIRED, CANCELLING, CANCELLED = (
    "queued",
    "running",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)
FINAL_STATES = frozenset({COMPLETED, FAILED, EXPIRED, CANCELLED})
BATCH_MODES = ("manual", "auto")


@dataclass
class BatchPlan:
    """How an emulated batch job ends and what its result files hold."""

    final_state: str = COMPLETED
    error_message: str = "The batch could not be processed."
    item_errors: Collection[int | str] = ()
    answer_faults: Mapping[int | str, str] = field(default_factory=dict)
    expire_after: int = 0
    shuffle: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def contains(self, needle: str | bytes) -> bool:
        raw = needle.encode() if isinstance(needle, str) else needle
        text = raw.decode("utf-8", "replace")
        if text in self.path or text in self.query:
            return True
        if any(text in k or text in v for k, v in self.headers.items()):
            return True
        return raw in self.body


class ApiError(Exception):
    """Raised inside a handler; answered with the vendor's error body."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    kind: str = "input"  # input | output | error


@dataclass
class Item:
    custom_id: str
    body: dict[str, Any]


@dataclass
class Job:
    id: str
    model: str
    endpoint: str
    input_file_ids: list[str]
    items: list[Item]
    metadata: dict[str, Any]
    plan: BatchPlan
    created_at: int
    state: str = QUEUED
    polls: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    succeeded: int = 0
    failed: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    inline: bool = False
    outputs: list[dict[str, Any]] | None = None


@dataclass
class QueuedFault:
    fault: str
    remaining: int | None
    path_contains: str | None
    method: str | None = None
    after: bool = False


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def message_text(content: Any) -> str:
    """The text of a chat message's ``content`` (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _answer_wrapper(response_format: Any) -> str | None:
    """The property a ``json_schema`` response format wraps the verdict array in, if any."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and prop.get("type") == "array":
            return str(name)
    return None


def apply_answer_fault(fault: str, text: str) -> tuple[str, str]:
    """Corrupt an answer; returns ``(text, finish_reason)``."""
    if fault == Fault.MALFORMED_JSON:
        return "Here are the verdicts: {issue_id: 0, error_category: FALSE_POSITIVE", "stop"
    if fault == Fault.TRUNCATED_JSON:
        stripped = text.strip()
        return stripped[: max(1, int(len(stripped) * 0.6))], "length"
    data = json.loads(text)
    items = data if isinstance(data, list) else next(v for v in data.values() if isinstance(v, list))
    if fault == Fault.MISSING_IDS and items:
        items.pop()
    elif fault == Fault.UNKNOWN_IDS:
        ids = [i["issue_id"] for i in items]
        items.append(
            {
                "issue_id": (max(ids) if ids else 0) + 1000,
                "error_category": CATEGORIES[0],
                "confidence_score": 50,
                "reasoning": "A verdict for a flag that was not asked about.",
            }
        )
    return json.dumps(data), "stop"


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``name -> (filename, data)`` of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    parts: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return parts
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            parts[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return parts


Route = tuple[str, re.Pattern[str], Callable[..., Response]]


class ChatApiEmulator(LoopbackServer):
    """A fake chat-completion API server; vendors subclass it (see the module docstring).

    Settings (plain attributes):

    * ``api_keys``: valid keys (``None``: any key not in ``invalid_api_keys``);
      ``require_key=False`` serves requests without a key (a local OpenAI-compatible server).
    * ``models``: known model ids (``None``: any); another model gets the vendor's
      unknown-model error.
    * ``quota``: successful chat answers (sync and batch items alike) before every further
      chat request is refused with the vendor's quota error (``None``: unlimited).
    * ``latency``: seconds added to each chat completion.
    * ``answer_fn(prompt_text) -> str``: the verdict array as JSON text.
    """

    name = "chat-api"
    job_prefix = "batch_"
    file_prefix = "file-"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Iterable[str] | None = None,
        invalid_api_keys: Iterable[str] = ("invalid",),
        require_key: bool = True,
        models: Iterable[str] | None = None,
        quota: int | None = None,
        latency: float = 0.0,
        batch_mode: str = "manual",
        complete_after_polls: int = 2,
        answer_fn: Callable[[str], str] | None = None,
        record_limit: int = 5000,
        verbose: bool = False,
    ) -> None:
        if batch_mode not in BATCH_MODES:
            raise ValueError(f"batch_mode must be one of {BATCH_MODES}")
        super().__init__(host=host, port=port, verbose=verbose)
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.invalid_api_keys = frozenset(invalid_api_keys)
        self.require_key = require_key
        self.models = None if models is None else frozenset(models)
        self.quota = quota
        self.latency = latency
        self.batch_mode = batch_mode
        self.complete_after_polls = complete_after_polls
        self.answer_fn = answer_fn or default_answer
        self._lock = threading.RLock()
        self._faults: list[QueuedFault] = []
        self._default_plan = BatchPlan()
        self._next_plans: deque[BatchPlan] = deque()
        self._jobs: dict[str, Job] = {}
        self._files: dict[str, StoredFile] = {}
        self._requests: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._seen_prefixes: set[str] = set()
        self._routes: list[Route] = [
            (method, re.compile(pattern + r"/?$"), handler) for method, pattern, handler in self.routes()
        ]
        self.reset_stats()

    # -- vendor hooks --------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Callable[..., Response]]]:
        """``(method, path regex, handler(match, request))`` of the vendor's API."""
        raise NotImplementedError

    def error(self, status: int, kind: str, message: str, **extra: Any) -> Response:
        """The vendor's error response (``kind``: invalid_key, missing_key, rate_limit, quota,
        server_error, unavailable, unknown_model, not_found, bad_request)."""
        raise NotImplementedError

    def usage(self, prompt_tokens: int, completion_tokens: int, cached: int, body: dict[str, Any]) -> dict:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    # -- faults, plans, quota ------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        times: int | None = 1,
        path_contains: str | None = None,
        method: str | None = None,
        after: bool = False,
    ) -> None:
        """Queue a fault for the next ``times`` matching API calls (``None``: until cleared).

        HTTP faults hit any API call (``path_contains`` and ``method`` narrow them, e.g.
        ``"/chat/"``, ``"POST"``); with ``after=True`` the call is carried out and only its
        answer is lost (a job created although the client saw a 500). Answer faults corrupt
        the next successful synchronous chat answers.
        """
        if fault not in Fault.HTTP and fault not in Fault.ANSWER:
            raise ValueError(f"unknown fault {fault!r}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._faults.append(QueuedFault(fault, times, path_contains, method, after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_default_batch_plan(self, plan: BatchPlan | None = None, **kwargs: Any) -> None:
        with self._lock:
            self._default_plan = plan or BatchPlan(**kwargs)

    def plan_next_batch(self, plan: BatchPlan | None = None, **kwargs: Any) -> BatchPlan:
        built = plan or BatchPlan(**kwargs)
        with self._lock:
            self._next_plans.append(built)
        return built

    def reset(self) -> None:
        """Forget jobs, files, faults and plans; zero the counters (settings stay)."""
        with self._lock:
            self._jobs.clear()
            self._files.clear()
            self._faults.clear()
            self._next_plans.clear()
            self._seen_prefixes.clear()
            self.reset_stats()

    def reset_stats(self) -> None:
        with self._lock:
            self._counts: Counter[str] = Counter()
            self._status_counts: Counter[int] = Counter()
            self._faults_served: Counter[str] = Counter()
            self._answers = 0
            self._requests.clear()

    # -- introspection -------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters: ``http_requests``, ``chat_completions`` (every synchronous chat request,
        faulted ones included), ``answers`` (successful answers, sync and batch items),
        ``batch_creations``, ``files_uploaded``, ``path_counts`` (``"METHOD /path"``),
        ``status_counts``, ``faults_served`` and ``jobs`` (id -> generic state)."""
        with self._lock:
            return {
                "http_requests": sum(self._counts.values()),
                "chat_completions": self._counts.get("POST /v1/chat/completions", 0),
                "answers": self._answers,
                "batch_creations": sum(1 for _ in self._jobs),
                "files_uploaded": sum(1 for f in self._files.values() if f.kind == "input"),
                "path_counts": dict(self._counts),
                "status_counts": {str(k): v for k, v in self._status_counts.items()},
                "faults_served": dict(self._faults_served),
                "jobs": {job_id: job.state for job_id, job in self._jobs.items()},
            }

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def find_requests(self, needle: str | bytes) -> list[RecordedRequest]:
        return [r for r in self.requests if r.contains(needle)]

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def job_state(self, job_id: str) -> str:
        with self._lock:
            return self._jobs[job_id].state

    def file_content(self, file_id: str) -> bytes:
        with self._lock:
            return self._files[file_id].data

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
            if job.state not in FINAL_STATES:
                self._finish(job, state or job.plan.final_state)

    def complete_all(self, state: str | None = None) -> list[str]:
        with self._lock:
            done = [job for job in self._jobs.values() if job.state not in FINAL_STATES]
            for job in done:
                self._finish(job, state or job.plan.final_state)
            return [job.id for job in done]

    def _advance(self, job: Job) -> None:
        if job.state == QUEUED:
            job.state = RUNNING
            job.started_at = int(time.time())
        elif job.state == CANCELLING:
            self._finish(job, CANCELLED)
        elif job.state == RUNNING:
            self._finish(job, job.plan.final_state)

    def _poll(self, job: Job) -> None:
        """A status read: in ``auto`` mode, jobs move on."""
        job.polls += 1
        if job.state == CANCELLING:
            self._finish(job, CANCELLED)
        elif self.batch_mode == "auto" and job.state not in FINAL_STATES:
            if job.polls >= self.complete_after_polls:
                self._finish(job, job.plan.final_state)
            else:
                job.state = RUNNING
                job.started_at = job.started_at or int(time.time())

    def _finish(self, job: Job, state: str) -> None:
        job.state = state
        job.finished_at = int(time.time())
        job.started_at = job.started_at or job.finished_at
        if state == FAILED:
            job.errors = [{"code": "batch_failed", "message": job.plan.error_message, "line": None}]
            return
        plan = job.plan
        answered = len(job.items)
        if state == EXPIRED:
            answered = plan.expire_after
        elif state == CANCELLED:
            answered = 0
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(job.items):
            if index >= answered:
                errors.append(self.item_error_line(item, "expired" if state == EXPIRED else "cancelled"))
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
        plan = self._next_plans.popleft() if self._next_plans else self._default_plan
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

    def check_model(self, model: Any) -> None:
        if not isinstance(model, str) or not model:
            raise ApiError(self.error(400, "bad_request", "You must provide a model parameter."))
        if self.models is not None and model not in self.models:
            raise ApiError(self.error(404, "unknown_model", model))

    # -- chat completions --------------------------------------------------------

    def chat(self, body: dict[str, Any], fault: str | None = None) -> Response:
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            completion = self._completion(body, body.get("model"), fault)
        return Response.json(200, completion)

    def _completion(self, body: dict[str, Any], model: Any, fault: str | None) -> dict[str, Any]:
        """One chat completion (the lock is held); raises ApiError for refusals."""
        self.check_model(model)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(self.error(400, "bad_request", "messages must be a non-empty array"))
        if self.quota is not None and self._answers >= self.quota:
            self._faults_served[Fault.QUOTA] += 1
            raise ApiError(self.error(429, "quota", "quota"))
        user = "\n".join(
            message_text(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") == "user"
        )
        system = "\n".join(
            message_text(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") in ("system", "developer")
        )
        verdicts = json.loads(self.answer_fn(user))
        wrapper = _answer_wrapper(body.get("response_format"))
        text = json.dumps({wrapper: verdicts} if wrapper else verdicts)
        finish = "stop"
        if fault:
            self._faults_served[fault] += 1
            text, finish = apply_answer_fault(fault, text)
        prompt_tokens = _tokens(len(user) + len(system))
        # Providers cache a repeated prompt prefix (1024 tokens or more, in steps of 128).
        system_tokens = _tokens(len(system)) if system else 0
        cached = 0
        if system_tokens >= 1024 and system in self._seen_prefixes:
            cached = system_tokens // 128 * 128
        if system:
            self._seen_prefixes.add(system)
        self._answers += 1
        return {
            "id": self._new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": self.usage(prompt_tokens, _tokens(len(text)), cached, body),
        }

    # -- request handling --------------------------------------------------------

    def api_key(self, headers: Mapping[str, str]) -> str | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        auth = lowered.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return None

    def check_key(self, headers: Mapping[str, str]) -> None:
        key = self.api_key(headers)
        if key is None:
            if self.require_key:
                raise ApiError(self.error(401, "missing_key", ""))
            return
        if key in self.invalid_api_keys or (self.api_keys is not None and key not in self.api_keys):
            raise ApiError(self.error(401, "invalid_key", key))

    def _take_fault(self, path: str, *, answer: bool, method: str = "POST") -> QueuedFault | None:
        for queued in self._faults:
            if (queued.fault in Fault.ANSWER) != answer:
                continue
            if queued.path_contains and queued.path_contains not in path:
                continue
            if queued.method and queued.method != method:
                continue
            if queued.remaining is not None:
                queued.remaining -= 1
                if queued.remaining <= 0:
                    self._faults.remove(queued)
            return queued
        return None

    def http_fault(self, fault: str) -> Response:
        if fault == Fault.RATE_LIMIT:
            return self.error(429, "rate_limit", "")
        if fault == Fault.QUOTA:
            return self.error(429, "quota", "")
        if fault == Fault.SERVER_ERROR:
            return self.error(500, "server_error", "")
        return self.error(503, "unavailable", "")

    def handle(
        self, method: str, raw_path: str, header_items: list[tuple[str, str]], body: bytes
    ) -> Response:
        headers = dict(header_items)
        split = urlsplit(raw_path)
        path, query = split.path, split.query
        if path.startswith("/_emulator/"):
            return self._control(method, path, body)
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, dict(headers), body))
            self._counts[f"{method} {self.normalise_path(path)}"] += 1
        try:
            response = self._route(method, path, query, headers, body)
        except ApiError as exc:
            response = exc.response
        except Exception as exc:  # an emulator bug must show up as a 500, not a hang
            response = Response.json(500, {"error": {"message": f"emulator bug: {exc!r}"}})
        with self._lock:
            self._status_counts[response.status] += 1
        return response

    def normalise_path(self, path: str) -> str:
        return re.sub(r"/(file-|batch_|[0-9a-f]{8}-)[0-9a-f-]+", r"/{id}", path)

    def _route(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        found = next(
            (
                (match, handler)
                for route_method, pattern, handler in self._routes
                if route_method == method and (match := pattern.match(path))
            ),
            None,
        )
        if found is None:
            return self.error(404, "not_found", f"Unknown request URL: {method} {path}")
        match, handler = found
        self.check_key(headers)
        with self._lock:
            fault = self._take_fault(path, answer=False, method=method)
            if fault:
                self._faults_served[fault.fault] += 1
        request = _Request(method, path, parse_qs(query), headers, body)
        if fault and not fault.after:
            return self.http_fault(fault.fault)
        response = handler(match, request)
        return self.http_fault(fault.fault) if fault else response

    def json_body(self, request: _Request) -> dict[str, Any]:
        try:
            data = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise ApiError(self.error(400, "bad_request", f"invalid JSON body: {exc}")) from exc
        if not isinstance(data, dict):
            raise ApiError(self.error(400, "bad_request", "the body must be a JSON object"))
        return data

    def answer_fault(self, path: str) -> str | None:
        with self._lock:
            queued = self._take_fault(path, answer=True)
            return queued.fault if queued else None

    def _control(self, method: str, path: str, body: bytes) -> Response:
        """Paths for a standalone emulator (benchmarks): no key, not counted."""
        if path == "/_emulator/stats":
            return Response.json(200, self.stats())
        if path == "/_emulator/reset" and method == "POST":
            self.reset()
            return Response.json(200, {})
        if path == "/_emulator/complete_all" and method == "POST":
            return Response.json(200, {"completed": self.complete_all()})
        if path == "/_emulator/quota" and method == "POST":
            self.quota = json.loads(body or b"{}").get("quota")
            return Response.json(200, {"quota": self.quota})
        return Response.json(404, {"error": "unknown control path"})


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), "")
