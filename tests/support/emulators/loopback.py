"""The HTTP plumbing every loopback emulator shares: a threaded server on 127.0.0.1 (free port by
default) whose handler reads the request body (plain or chunked) and hands the request to
:meth:`LoopbackServer.handle`, the record of requests received, the plans that say how emulated
batch jobs end, and the standalone loop of an emulator in its own process.

Only the Python standard library is used.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

__all__ = [
    "BatchPlans",
    "LoopbackServer",
    "PlannedBatches",
    "RecordedRequest",
    "Response",
    "serve_until_signalled",
]


@dataclass
class Response:
    """An HTTP answer: status, body bytes and headers (``Content-Length`` is added when sent)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


@dataclass
class RecordedRequest:
    """One HTTP request as received (body truncated to ``record_body_limit``)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    body_size: int = 0
    endpoint: str = ""
    timestamp: float = 0.0
    status: int = 0

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def contains(self, needle: str | bytes) -> bool:
        """Whether the needle occurs in the path, query, headers or body."""
        raw = needle.encode() if isinstance(needle, str) else needle
        text = raw.decode("utf-8", "replace")
        if text in self.path or text in self.query:
            return True
        if any(text in k or text in v for k, v in self.headers.items()):
            return True
        return raw in self.body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: LoopbackServer
    connections = 0  # accepted so far (one thread accepts, so a plain counter is enough)
    # A real API accepts every connection a client opens at once; the standard library's
    # default listen queue (5) drops some of a burst, which the client's kernel retries only a
    # second later.
    request_queue_size = 128

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.emulator.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    # Headers and body are two writes; without TCP_NODELAY every keep-alive
    # response waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return self.server.emulator.server_version

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        response = self.server.emulator.handle(self.command, self.path, list(self.headers.items()), body)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = _dispatch
    do_POST = _dispatch
    do_DELETE = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.emulator.verbose:
            super().log_message(fmt, *args)


class LoopbackServer:
    """A threaded HTTP server in a daemon thread; subclasses answer in :meth:`handle`.

    Use it as a context manager (``with Emulator() as emu: emu.url``) or call :meth:`start` /
    :meth:`stop`.
    """

    name = "loopback-emulator"
    server_version = "LoopbackEmulator/1.0"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, record_limit: int = 2000, verbose: bool = False
    ) -> None:
        self.host = host
        self._requested_port = port
        self.verbose = verbose
        self._lock = threading.RLock()
        self._requests: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def handle(
        self, method: str, raw_path: str, header_items: list[tuple[str, str]], body: bytes
    ) -> Response:
        """The answer to one request (``raw_path`` with its query string)."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """The emulator's counters (JSON-serialisable); printed when a standalone one stops."""
        return {}

    @property
    def requests(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first (bounded by ``record_limit``)."""
        with self._lock:
            return list(self._requests)

    def find_requests(self, needle: str | bytes) -> list[RecordedRequest]:
        """Recorded requests whose path, query, headers or body contain ``needle``."""
        return [r for r in self.requests if r.contains(needle)]

    def start(self) -> Self:
        """Bind the socket and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connections(self) -> int:
        """TCP connections accepted since the server started (keep-alive reuses one)."""
        return self._server.connections if self._server is not None else 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://host:port``, without any API path."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL an SDK is given (vendors add their API path)."""
        return self.root_url


PlanT = TypeVar("PlanT")


class BatchPlans(Generic[PlanT]):
    """How emulated batch jobs end: a default plan, and plans queued for the next jobs created
    (the caller holds the emulator's lock)."""

    def __init__(self, make: Callable[..., PlanT], default: PlanT | None = None) -> None:
        self._make = make
        self.default = default or make()
        self._queued: deque[PlanT] = deque()

    def set_default(self, plan: PlanT | None, settings: Mapping[str, Any]) -> None:
        self.default = plan or self._make(**settings)

    def queue(self, plan: PlanT | None, settings: Mapping[str, Any]) -> PlanT:
        built = plan or self._make(**settings)
        self._queued.append(built)
        return built

    def take(self) -> PlanT:
        """The plan of a job being created."""
        return self._queued.popleft() if self._queued else self.default

    def clear(self) -> None:
        self._queued.clear()


class PlannedBatches:
    """The batch-plan controls of an emulator with batch jobs (its ``_plans``)."""

    _lock: threading.RLock
    _plans: BatchPlans[Any]

    def set_default_batch_plan(self, plan: Any = None, **settings: Any) -> None:
        """The plan of every job with no plan of its own (``settings`` build one)."""
        with self._lock:
            self._plans.set_default(plan, settings)

    def plan_next_batch(self, plan: Any = None, **settings: Any) -> Any:
        """Queue a plan for the next batch job created; returns it."""
        with self._lock:
            return self._plans.queue(plan, settings)


def serve_until_signalled(emulator: LoopbackServer) -> None:
    """Run a standalone emulator: print its ``url`` as the first stdout line, serve until SIGINT or
    SIGTERM, then print the counters as one JSON line on stderr."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with emulator:
        print(emulator.url, flush=True)
        while not stop.wait(0.5):
            pass
        print(json.dumps(emulator.stats()), file=sys.stderr, flush=True)
