"""The chat-completion emulator base: settings, the fault queue, counters, synchronous chat
answers, the Files API and the routing of a request to a vendor's handler. Batch jobs are in
:mod:`.jobs`; each vendor module adds its wire shapes and error bodies."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.emulators.chat_api.jobs import BatchJobsMixin
from support.emulators.chat_api.wire import (
    BATCH_MODES,
    ApiError,
    BatchPlan,
    Fault,
    Job,
    QueuedFault,
    Request,
    StoredFile,
    answer_wrapper,
    apply_answer_fault,
    message_text,
    parse_multipart,
    tokens_of,
)
from support.emulators.gemini import default_answer
from support.emulators.loopback import (
    BatchPlans,
    LoopbackServer,
    PlannedBatches,
    RecordedRequest,
    Response,
    serve_until_signalled,
)

Route = tuple[str, re.Pattern[str], Callable[..., Response]]


class ChatApiEmulator(BatchJobsMixin, PlannedBatches, LoopbackServer):
    """A fake chat-completion API server; vendors subclass it (see the module docstring).

    Settings (plain attributes):

    * ``api_keys``: valid keys (``None``: any key not in ``invalid_api_keys``);
      ``require_key=False`` serves requests without a key (a local OpenAI-compatible server).
    * ``models``: known model ids (``None``: any); another model gets the vendor's
      unknown-model error.
    * ``quota``: successful chat answers (sync and batch items alike) before every further
      chat request is refused with the vendor's quota error (``None``: unlimited).
    * ``latency``: seconds added to each chat completion.
    * ``retry_after``: seconds a rate-limited client is told to wait.
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
        retry_after: float = 0.05,
        record_limit: int = 5000,
        verbose: bool = False,
    ) -> None:
        if batch_mode not in BATCH_MODES:
            raise ValueError(f"batch_mode must be one of {BATCH_MODES}")
        super().__init__(host=host, port=port, record_limit=record_limit, verbose=verbose)
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.invalid_api_keys = frozenset(invalid_api_keys)
        self.require_key = require_key
        self.models = None if models is None else frozenset(models)
        self.quota = quota
        self.latency = latency
        self.retry_after = retry_after
        self.batch_mode = batch_mode
        self.complete_after_polls = complete_after_polls
        self.answer_fn = answer_fn or default_answer
        self._faults: list[QueuedFault] = []
        self._plans = BatchPlans(BatchPlan)
        self._jobs: dict[str, Job] = {}
        self._files: dict[str, StoredFile] = {}
        self._seen_prefixes: set[str] = set()
        self._routes: list[Route] = [
            (method, re.compile(pattern + r"/?$"), handler) for method, pattern, handler in self.routes()
        ]
        self.reset_stats()

    # -- vendor hooks --------------------------------------------------------

    batch_path = r"/v1/batches"  # the vendor's collection of batch jobs
    upload_needs_purpose = True  # False: a missing ``purpose`` is the vendor's default
    default_purpose = "batch"

    def routes(self) -> list[tuple[str, str, Callable[..., Response]]]:
        """``(method, path regex, handler(match, request))`` of the API."""
        jobs = self.batch_path
        return [
            ("POST", r"/v1/chat/completions", self._chat),
            ("POST", r"/v1/files", self._upload),
            ("GET", r"/v1/files/(?P<id>[^/]+)", self._file_get),
            ("GET", r"/v1/files/(?P<id>[^/]+)/content", self._file_content),
            ("DELETE", r"/v1/files/(?P<id>[^/]+)", self._file_delete),
            ("POST", jobs, self.batch_create),
            ("GET", jobs, self.batch_list),
            ("GET", jobs + r"/(?P<id>[^/]+)", self._batch_get),
            ("POST", jobs + r"/(?P<id>[^/]+)/cancel", self._batch_cancel),
        ]

    def batch_create(self, match: re.Match[str], request: Request) -> Response:
        raise NotImplementedError

    def batch_list(self, match: re.Match[str], request: Request) -> Response:
        raise NotImplementedError

    def file_json(self, stored: StoredFile) -> dict[str, Any]:
        """The vendor's wire shape of a file."""
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

    def reset(self) -> None:
        """Forget jobs, files, faults and plans; zero the counters (settings stay)."""
        with self._lock:
            self._jobs.clear()
            self._files.clear()
            self._faults.clear()
            self._plans.clear()
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

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def job_state(self, job_id: str) -> str:
        with self._lock:
            return self._jobs[job_id].state

    def file_content(self, file_id: str) -> bytes:
        with self._lock:
            return self._files[file_id].data

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
        wrapper = answer_wrapper(body.get("response_format"))
        text = json.dumps({wrapper: verdicts} if wrapper else verdicts)
        finish = "stop"
        if fault:
            self._faults_served[fault] += 1
            text, finish = apply_answer_fault(fault, text)
        prompt_tokens = tokens_of(len(user) + len(system))
        # Providers cache a repeated prompt prefix (1024 tokens or more, in steps of 128).
        system_tokens = tokens_of(len(system)) if system else 0
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
            "usage": self.usage(prompt_tokens, tokens_of(len(text)), cached, body),
        }

    def check_model(self, model: Any) -> None:
        if not isinstance(model, str) or not model:
            raise ApiError(self.error(400, "bad_request", "You must provide a model parameter."))
        if self.models is not None and model not in self.models:
            raise ApiError(self.error(404, "unknown_model", model))

    def _chat(self, match: re.Match[str], request: Request) -> Response:
        return self.chat(self.json_body(request), self.answer_fault(request.path))

    # -- files -------------------------------------------------------------------

    def _upload(self, match: re.Match[str], request: Request) -> Response:
        parts = parse_multipart(request.header("content-type"), request.body)
        if "file" not in parts or (self.upload_needs_purpose and "purpose" not in parts):
            wanted = "'file' and 'purpose' are" if self.upload_needs_purpose else "'file' is"
            status = 400 if self.upload_needs_purpose else 422
            return self.error(status, "bad_request", f"A multipart {wanted} required.")
        filename, data = parts["file"]
        purpose = parts["purpose"][1].decode() if "purpose" in parts else self.default_purpose
        with self._lock:
            return Response.json(200, self.file_json(self._new_file(filename or "upload", purpose, data)))

    def _file_get(self, match: re.Match[str], request: Request) -> Response:
        with self._lock:
            return Response.json(200, self.file_json(self.get_file(match["id"])))

    def _file_content(self, match: re.Match[str], request: Request) -> Response:
        with self._lock:
            data = self.get_file(match["id"]).data
        return Response(200, data, {"Content-Type": "application/octet-stream"})

    def _file_delete(self, match: re.Match[str], request: Request) -> Response:
        with self._lock:
            stored = self.get_file(match["id"])
            del self._files[stored.id]
            return Response.json(200, {"id": stored.id, "object": "file", "deleted": True})

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
        request = Request(method, path, parse_qs(query), headers, body)
        if fault and not fault.after:
            return self.http_fault(fault.fault)
        response = handler(match, request)
        return self.http_fault(fault.fault) if fault else response

    def json_body(self, request: Request) -> dict[str, Any]:
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


def serve_standalone(emulator_class: type[ChatApiEmulator], argv: list[str] | None = None) -> int:
    """A vendor emulator in its own process (benchmarks): serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=f"Serve a loopback {emulator_class.__name__}.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--auto-complete", action="store_true", help="jobs finish on their 2nd read")
    parser.add_argument("--quota", type=int, default=None, help="answers before the quota is spent")
    parser.add_argument("--no-key", action="store_true", help="serve requests without an API key")
    args = parser.parse_args(argv)
    emulator = emulator_class(
        port=args.port,
        latency=args.latency,
        batch_mode="auto" if args.auto_complete else "manual",
        quota=args.quota,
        require_key=not args.no_key,
    )
    serve_until_signalled(emulator)
    return 0
