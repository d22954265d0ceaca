"""The Gemini emulator: settings, batch control, the fault queue, counters, the dispatch of a
request to its handler and the control paths of a standalone emulator. The handlers are in
:mod:`.generate`, :mod:`.batches` and :mod:`.files`."""

from __future__ import annotations

import base64
import json
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from support.emulators.gemini.batches import BatchesMixin
from support.emulators.gemini.faults import FaultsMixin
from support.emulators.gemini.files import FilesMixin
from support.emulators.gemini.generate import GenerateContentMixin
from support.emulators.gemini.wire import (
    BATCH_MODES,
    INTERNAL_MESSAGE,
    TERMINAL_STATES,
    ApiError,
    BatchPlan,
    Endpoint,
    Job,
    QueuedFault,
    Response,
    Route,
    StoredFile,
    Upload,
    error_response,
    json_response,
    normalise_state,
    route_of,
    utc_now,
)
from support.emulators.loopback import BatchPlans, LoopbackServer, PlannedBatches, RecordedRequest


class GeminiEmulator(
    FaultsMixin, GenerateContentMixin, BatchesMixin, FilesMixin, PlannedBatches, LoopbackServer
):
    """A threaded fake Gemini Developer API server (see the module docstring).

    Use it as a context manager (``with GeminiEmulator() as emu: emu.url``) or
    call :meth:`start` / :meth:`stop`. All public methods are thread-safe.
    """

    name = "gemini-emulator"
    server_version = "GeminiEmulator/1.0"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        latency_per_item: float = 0.0,
        requests_per_minute: int | None = None,
        rate_window: float = 60.0,
        batch_mode: str = "manual",
        complete_after_polls: int | None = 2,
        complete_after_seconds: float | None = None,
        answer_fn: Callable[[str], str] | None = None,
        api_keys: Iterable[str] | None = None,
        invalid_api_keys: Iterable[str] = ("invalid",),
        default_batch_plan: BatchPlan | None = None,
        max_inline_bytes: int = 20 * 1024 * 1024,
        default_page_size: int = 50,
        record_limit: int = 2000,
        record_body_limit: int = 1024 * 1024,
        verbose: bool = False,
    ) -> None:
        if batch_mode not in BATCH_MODES:
            raise ValueError(f"batch_mode must be one of {BATCH_MODES}")
        super().__init__(host=host, port=port, record_limit=record_limit, verbose=verbose)
        self.latency = latency
        self.latency_per_item = latency_per_item
        self.requests_per_minute = requests_per_minute
        self.rate_window = rate_window
        self.batch_mode = batch_mode
        self.complete_after_polls = complete_after_polls
        self.complete_after_seconds = complete_after_seconds
        self.answer_fn = answer_fn
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.invalid_api_keys = frozenset(invalid_api_keys)
        self.max_inline_bytes = max_inline_bytes
        self.default_page_size = default_page_size
        self.record_body_limit = record_body_limit

        self._plans = BatchPlans(BatchPlan, default_batch_plan)
        self._faults: list[QueuedFault] = []
        self._jobs: dict[str, Job] = {}
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, Upload] = {}
        self._response_seq = 0
        self._in_flight = 0  # generateContent calls accepted and not yet answered
        self.reset_stats()

    @property
    def url(self) -> str:
        """Base URL for ``HttpOptions(base_url=...)`` / ``GOOGLE_GEMINI_BASE_URL``."""
        return self.root_url

    # -- batch control -----------------------------------------------------

    def plan_batch(self, name: str, plan: BatchPlan | None = None, **kwargs: Any) -> None:
        """Replace the plan of an existing (not yet finished) job."""
        with self._lock:
            job = self._public_job(name)
            job.plan = plan or replace(job.plan, **kwargs)

    def advance(self, name: str) -> str:
        """Move a job one step PENDING -> RUNNING -> final; returns the state."""
        with self._lock:
            job = self._public_job(name)
            self._advance(job)
            return job.state

    def set_state(self, name: str, state: str, *, error: dict[str, Any] | None = None) -> None:
        """Force a job into a state (``SUCCEEDED`` builds its results)."""
        target = normalise_state(state)
        with self._lock:
            job = self._public_job(name)
            if target in TERMINAL_STATES:
                if error is not None:
                    job.plan = replace(job.plan, error=error)
                self._finish(job, target)
            else:
                job.state = target
                job.update_time = utc_now()
                job.end_time = None
                job.output = None
                job.error = None

    def complete_all(self, state: str | None = None) -> list[str]:
        """Finish every unfinished job (in its planned or the given state)."""
        done = []
        with self._lock:
            for job in self._jobs.values():
                if job.state not in TERMINAL_STATES:
                    self._finish(job, normalise_state(state) if state else job.plan.final_state)
                    done.append(job.name)
        return done

    def reset(self) -> None:
        """Forget jobs, files, uploads, queued faults and plans; zero counters.

        Settings (``latency``, ``batch_mode``, ``answer_fn``, keys, default
        plan) are kept; they are plain attributes a test may reassign.
        """
        with self._lock:
            self._jobs.clear()
            self._files.clear()
            self._uploads.clear()
            self._faults.clear()
            self._plans.clear()
            self.reset_stats()

    # -- introspection -----------------------------------------------------

    def reset_stats(self) -> None:
        """Zero the counters and forget recorded requests."""
        with self._lock:
            self._http_requests = 0
            self._generate_calls = 0
            self._batch_creations = 0
            self._batch_items = 0
            self._max_inline_bytes = 0
            self._uploaded_sizes: list[int] = []
            self._path_counts: Counter[str] = Counter()
            self._endpoint_counts: Counter[str] = Counter()
            self._status_counts: Counter[int] = Counter()
            self._faults_served: Counter[str] = Counter()
            self._accepted: deque[float] = deque()  # generateContent starts inside the rate window
            self._rate_limited = 0
            self._answered_at: list[float] = []
            self._peak_in_flight = self._in_flight  # calls under way stay counted
            self._requests.clear()

    def stats(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the counters.

        ``http_requests`` counts every API request (control paths excluded),
        ``generate_content_calls`` every ``generateContent`` request including
        faulted ones, ``batch_creations`` jobs actually created,
        ``batch_items_answered`` batch items answered with a response,
        ``max_inline_batch_bytes`` the largest inline ``batchGenerateContent``
        body (rejected ones included), ``uploaded_file_sizes`` finalized
        uploads, ``endpoint_counts`` / ``path_counts`` per :class:`Endpoint` /
        ``"METHOD /path"``, ``faults_served`` per fault name, ``jobs`` the
        current state of each job, ``peak_in_flight`` the most ``generateContent``
        calls accepted and not yet answered at one time since the last reset.
        """
        with self._lock:
            return {
                "http_requests": self._http_requests,
                "generate_content_calls": self._generate_calls,
                "batch_creations": self._batch_creations,
                "batch_items_answered": self._batch_items,
                "max_inline_batch_bytes": self._max_inline_bytes,
                "uploaded_file_sizes": list(self._uploaded_sizes),
                "path_counts": dict(self._path_counts),
                "endpoint_counts": dict(self._endpoint_counts),
                "status_counts": {str(k): v for k, v in self._status_counts.items()},
                "faults_served": dict(self._faults_served),
                "rate_limited": self._rate_limited,
                "answered": len(self._answered_at),
                "answered_span": (self._answered_at[-1] - self._answered_at[0]) if self._answered_at else 0.0,
                "answered_at": [round(t - self._answered_at[0], 3) for t in self._answered_at],
                "peak_in_flight": self._peak_in_flight,
                "jobs": {name: job.state for name, job in self._jobs.items()},
            }

    @property
    def http_requests(self) -> int:
        with self._lock:
            return self._http_requests

    @property
    def generate_content_calls(self) -> int:
        with self._lock:
            return self._generate_calls

    @property
    def batch_creations(self) -> int:
        with self._lock:
            return self._batch_creations

    @property
    def max_inline_batch_bytes(self) -> int:
        with self._lock:
            return self._max_inline_bytes

    @property
    def uploaded_file_sizes(self) -> list[int]:
        with self._lock:
            return list(self._uploaded_sizes)

    @property
    def path_counts(self) -> Counter[str]:
        """``"METHOD /path"`` -> count (query string excluded)."""
        with self._lock:
            return Counter(self._path_counts)

    @property
    def endpoint_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._endpoint_counts)

    def job_names(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def job(self, name: str) -> dict[str, Any]:
        """The wire JSON of a job (the operation), without advancing it."""
        with self._lock:
            return self._job_wire(self._public_job(name))

    def job_state(self, name: str) -> str:
        """Short state name, e.g. ``"RUNNING"``."""
        with self._lock:
            return self._public_job(name).state

    def job_requests(self, name: str) -> list[dict[str, Any] | None]:
        """The GenerateContentRequest of each item of a job, in input order."""
        with self._lock:
            return [item.request for item in self._public_job(name).items]

    def file_names(self) -> list[str]:
        with self._lock:
            return list(self._files)

    def file_content(self, name: str) -> bytes:
        with self._lock:
            if name not in self._files:
                raise KeyError(name)
            return self._files[name].data

    # -- request handling --------------------------------------------------

    def handle(
        self, method: str, raw_path: str, header_items: list[tuple[str, str]], body: bytes
    ) -> Response:
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in header_items}
        if path.startswith("/_emulator/"):
            try:
                return self._handle_control(method, path, body)
            except (ValueError, KeyError, TypeError) as exc:
                return error_response(ApiError(400, str(exc)))
        route = route_of(method, path, query)
        with self._lock:
            self._http_requests += 1
            self._path_counts[f"{method} {path}"] += 1
            self._endpoint_counts[route.endpoint] += 1
            if route.endpoint == Endpoint.GENERATE_CONTENT:
                self._generate_calls += 1
            record = RecordedRequest(
                method=method,
                path=path,
                query=split.query,
                headers=dict(header_items),
                body=body[: self.record_body_limit],
                body_size=len(body),
                endpoint=route.endpoint,
                timestamp=time.time(),
            )
            self._requests.append(record)
        try:
            response = self._dispatch(method, path, query, headers, body, route)
        except ApiError as exc:
            response = error_response(exc)
            if route.endpoint == Endpoint.FILES_UPLOAD_CHUNK:
                # Without this header the SDK's chunk loop sleeps and retries.
                response.headers["X-Goog-Upload-Status"] = "final"
        except Exception:  # pragma: no cover - emulator bug
            if self.verbose:
                traceback.print_exc()
            response = error_response(ApiError(500, INTERNAL_MESSAGE))
        with self._lock:
            record.status = response.status
            self._status_counts[response.status] += 1
        return response

    def _dispatch(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        route: Route,
    ) -> Response:
        if route.endpoint == Endpoint.UNKNOWN:
            raise ApiError(404, f"Method not found: {method} {path}", "NOT_FOUND")
        if route.endpoint != Endpoint.FILES_UPLOAD_CHUNK:
            self._check_api_key(headers, query)
        fault = self._take_fault(route.endpoint, path, http=True)
        if fault is not None:
            self._raise_http_fault(fault, route.model)
        endpoint = route.endpoint
        if endpoint == Endpoint.GENERATE_CONTENT:
            return self._h_generate(route, path, body)
        if endpoint == Endpoint.BATCH_GENERATE_CONTENT:
            return self._h_batch_create(route, body)
        if endpoint == Endpoint.BATCHES_GET:
            return self._h_batch_get(route.resource)
        if endpoint == Endpoint.BATCHES_LIST:
            return self._h_batch_list(query)
        if endpoint == Endpoint.BATCHES_CANCEL:
            return self._h_batch_cancel(route.resource)
        if endpoint == Endpoint.BATCHES_DELETE:
            return self._h_batch_delete(route.resource)
        if endpoint == Endpoint.FILES_UPLOAD:
            return self._h_upload_start(route, headers, body)
        if endpoint == Endpoint.FILES_UPLOAD_CHUNK:
            return self._h_upload_chunk(query, headers, body)
        if endpoint == Endpoint.FILES_GET:
            return self._h_file_get(route.resource)
        if endpoint == Endpoint.FILES_LIST:
            return self._h_file_list(query)
        if endpoint == Endpoint.FILES_DELETE:
            return self._h_file_delete(route.resource)
        if endpoint == Endpoint.FILES_DOWNLOAD:
            return self._h_file_download(route.resource, query)
        raise ApiError(404, f"Method not found: {method} {path}", "NOT_FOUND")

    def _page(self, items: list[Any], query: Mapping[str, str]) -> tuple[list[Any], str | None]:
        try:
            size = int(query.get("pageSize") or self.default_page_size)
        except ValueError:
            raise ApiError(400, "Invalid pageSize.") from None
        size = max(1, min(size, 1000))
        token = query.get("pageToken")
        offset = 0
        if token:
            try:
                offset = int(base64.urlsafe_b64decode(token.encode()).decode().split(":")[1])
            except (ValueError, IndexError):
                raise ApiError(400, "Invalid page token.") from None
        page = items[offset : offset + size]
        next_offset = offset + size
        next_token = None
        if next_offset < len(items):
            next_token = base64.urlsafe_b64encode(f"offset:{next_offset}".encode()).decode()
        return page, next_token

    # -- control endpoints (standalone mode) ------------------------------

    def _handle_control(self, method: str, path: str, body: bytes) -> Response:
        action = path.removeprefix("/_emulator/")
        if action == "stats" and method == "GET":
            return json_response(self.stats())
        if action == "complete_all" and method == "POST":
            return json_response({"completed": self.complete_all()})
        if action == "reset" and method == "POST":
            self.reset()
            return json_response({})
        if action == "reset_stats" and method == "POST":
            self.reset_stats()
            return json_response({})
        if action == "faults" and method == "POST":
            spec = json.loads(body or b"{}")
            fault = spec.pop("fault")
            self.inject(fault, **spec)
            return json_response({"pending": self.pending_faults()})
        if action == "faults" and method == "DELETE":
            self.clear_faults()
            return json_response({})
        raise KeyError(f"unknown control action {method} {action}")
