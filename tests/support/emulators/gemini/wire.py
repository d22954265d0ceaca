"""The Gemini emulator's vocabulary and wire helpers: fault and endpoint names, batch plans,
recorded requests, the API error, the internal records of jobs, files and uploads, and the
router from a REST path to an :class:`Endpoint`."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from support.emulators.loopback import Response

CATEGORIES: tuple[str, ...] = (
    "PARSING_ERROR",
    "SPELLING_ERROR",
    "ABSOLUTE_GRAMMATICAL_ERROR",
    "POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR",
    "STYLISTIC_PREFERENCE",
    "CONSISTENCY_ERROR",
    "AMBIGUOUS_PHRASING",
    "FALSE_POSITIVE",
    "FACTUAL_INACCURACY",
)

STATES: tuple[str, ...] = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "EXPIRED",
)
TERMINAL_STATES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
BATCH_MODES: tuple[str, ...] = ("manual", "per_poll", "auto")

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
BATCH_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
GRPC_CODES = {
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}
HTTP_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MISSING_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established "
    "identity). Please use API Key or other form of API consumer identity to "
    "call this API."
)
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
INTERNAL_MESSAGE = (
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
UNAVAILABLE_MESSAGE = "The model is overloaded. Please try again later."
NOT_FOUND_MESSAGE = "Requested entity was not found."
DEFAULT_ITEM_ERROR: dict[str, Any] = {
    "code": 13,
    "message": "Internal error encountered while processing this request.",
}
DEFAULT_JOB_ERROR: dict[str, Any] = {
    "code": 13,
    "message": "Batch processing failed due to an internal error.",
}
CHUNK_GRANULARITY = 8 * 1024 * 1024


class Fault:
    """Names of the injectable faults (plain strings, see the module doc)."""

    RATE_LIMIT_MINUTE = "rate_limit_minute"
    RATE_LIMIT_DAY = "rate_limit_day"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    HTTP_ERROR = "http_error"
    MALFORMED_JSON = "malformed_json"
    TRUNCATED_JSON = "truncated_json"
    MISSING_IDS = "missing_ids"
    UNKNOWN_IDS = "unknown_ids"
    DUPLICATE_IDS = "duplicate_ids"
    SAFETY_BLOCK = "safety_block"

    HTTP: frozenset[str] = frozenset({RATE_LIMIT_MINUTE, RATE_LIMIT_DAY, INTERNAL, UNAVAILABLE, HTTP_ERROR})
    ANSWER: frozenset[str] = frozenset(
        {
            MALFORMED_JSON,
            TRUNCATED_JSON,
            MISSING_IDS,
            UNKNOWN_IDS,
            DUPLICATE_IDS,
            SAFETY_BLOCK,
        }
    )


class Endpoint:
    """Names of the emulated REST methods (keys of ``stats()['endpoint_counts']``)."""

    GENERATE_CONTENT = "models.generateContent"
    BATCH_GENERATE_CONTENT = "models.batchGenerateContent"
    BATCHES_GET = "batches.get"
    BATCHES_LIST = "batches.list"
    BATCHES_CANCEL = "batches.cancel"
    BATCHES_DELETE = "batches.delete"
    FILES_UPLOAD = "files.upload"
    FILES_UPLOAD_CHUNK = "files.uploadChunk"
    FILES_GET = "files.get"
    FILES_LIST = "files.list"
    FILES_DELETE = "files.delete"
    FILES_DOWNLOAD = "files.download"
    UNKNOWN = "unknown"


@dataclass
class BatchPlan:
    """How an emulated batch job ends and what its results look like.

    Items are addressed by their key (``metadata.key`` inline, ``key`` in
    JSONL) as ``str`` or by their 0-based position as ``int``.
    """

    final_state: str = "SUCCEEDED"
    error: dict[str, Any] | None = None
    item_errors: Mapping[int | str, dict[str, Any] | None] | Collection[int | str] = ()
    answer_faults: Mapping[int | str, str] = field(default_factory=dict)
    shuffle: bool = False
    drop_metadata: bool = False

    def __post_init__(self) -> None:
        self.final_state = normalise_state(self.final_state)
        if self.final_state not in TERMINAL_STATES:
            raise ValueError(f"final_state must be terminal, got {self.final_state}")
        for name in self.answer_faults.values():
            if name not in Fault.ANSWER:
                raise ValueError(f"unknown answer fault {name!r}")

    def item_error(self, key: str | None, index: int) -> dict[str, Any] | None:
        """The error status planned for an item, or None."""
        for ident in (key, index):
            if ident is None:
                continue
            if isinstance(self.item_errors, Mapping):
                if ident in self.item_errors:
                    return dict(self.item_errors[ident] or DEFAULT_ITEM_ERROR)
            elif ident in self.item_errors:
                return dict(DEFAULT_ITEM_ERROR)
        return None

    def answer_fault(self, key: str | None, index: int) -> str | None:
        """The answer fault planned for an item, or None."""
        if key is not None and key in self.answer_faults:
            return self.answer_faults[key]
        return self.answer_faults.get(index)


def normalise_state(state: str) -> str:
    short = state.upper()
    for prefix in ("JOB_STATE_", "BATCH_STATE_"):
        if short.startswith(prefix):
            short = short[len(prefix) :]
    if short not in STATES:
        raise ValueError(f"unknown batch state {state!r}")
    return short


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> datetime:
    return datetime.now(UTC)


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        message: str,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or HTTP_STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": self.status,
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


@dataclass
class Item:
    index: int
    key: str | None
    metadata: dict[str, Any] | None
    request: dict[str, Any] | None
    parse_error: str | None = None


@dataclass
class Job:
    name: str
    model: str
    display_name: str | None
    create_time: datetime
    created_mono: float
    items: list[Item]
    input_file: str | None
    plan: BatchPlan
    state: str = "PENDING"
    update_time: datetime | None = None
    end_time: datetime | None = None
    polls: int = 0
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    request_bytes: int = 0


@dataclass
class StoredFile:
    name: str
    display_name: str | None
    mime_type: str
    data: bytes
    create_time: datetime
    source: str


@dataclass
class Upload:
    upload_id: str
    declared_size: int | None
    mime_type: str
    name: str | None
    display_name: str | None
    buffer: bytearray = field(default_factory=bytearray)


@dataclass
class QueuedFault:
    fault: str
    remaining: int | None
    endpoints: frozenset[str] | None
    path_contains: str | None
    params: dict[str, Any]

    def matches(self, endpoint: str, path: str) -> bool:
        if self.endpoints is None:
            if endpoint == Endpoint.FILES_UPLOAD_CHUNK:
                return False
        elif endpoint not in self.endpoints:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass
class Route:
    endpoint: str
    version: str = ""
    resource: str = ""
    model: str = ""


_PATH_RE = re.compile(r"^/(?:(?P<kind>upload|download)/)?(?P<ver>v\d+[a-z0-9]*)/(?P<rest>.*)$")
_MODEL_METHOD_RE = re.compile(
    r"^(?P<model>(?:models|tunedModels)/[^/:]+):(?P<method>generateContent|batchGenerateContent)$"
)
_BATCH_RE = re.compile(r"^batches/(?P<id>[^/:]+)(?P<cancel>:cancel)?$")
_FILE_RE = re.compile(r"^files/(?P<id>[^/:]+)(?P<download>:download)?$")


def route_of(method: str, path: str, query: Mapping[str, str]) -> Route:
    match = _PATH_RE.match(path)
    if not match:
        return Route(Endpoint.UNKNOWN)
    kind, version, rest = match.group("kind"), match.group("ver"), match.group("rest")
    if kind == "upload":
        if rest == "files" and method == "POST":
            if "upload_id" in query:
                return Route(Endpoint.FILES_UPLOAD_CHUNK, version)
            return Route(Endpoint.FILES_UPLOAD, version)
        return Route(Endpoint.UNKNOWN, version)
    if m := _MODEL_METHOD_RE.match(rest):
        if method != "POST":
            return Route(Endpoint.UNKNOWN, version)
        endpoint = (
            Endpoint.GENERATE_CONTENT
            if m.group("method") == "generateContent"
            else Endpoint.BATCH_GENERATE_CONTENT
        )
        return Route(endpoint, version, model=m.group("model"))
    if rest == "batches" and method == "GET":
        return Route(Endpoint.BATCHES_LIST, version)
    if m := _BATCH_RE.match(rest):
        name = f"batches/{m.group('id')}"
        if m.group("cancel"):
            if method == "POST":
                return Route(Endpoint.BATCHES_CANCEL, version, name)
        elif method == "GET":
            return Route(Endpoint.BATCHES_GET, version, name)
        elif method == "DELETE":
            return Route(Endpoint.BATCHES_DELETE, version, name)
        return Route(Endpoint.UNKNOWN, version)
    if rest == "files" and method == "GET":
        return Route(Endpoint.FILES_LIST, version)
    if m := _FILE_RE.match(rest):
        name = f"files/{m.group('id')}"
        if m.group("download"):
            if method == "GET":
                return Route(Endpoint.FILES_DOWNLOAD, version, name)
        elif method == "GET":
            return Route(Endpoint.FILES_GET, version, name)
        elif method == "DELETE":
            return Route(Endpoint.FILES_DELETE, version, name)
    return Route(Endpoint.UNKNOWN, version)


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    out = {"Content-Type": "application/json; charset=UTF-8"}
    out.update(headers or {})
    return Response(status, json.dumps(obj, indent=2).encode("utf-8"), out)


def error_response(error: ApiError) -> Response:
    return json_response(error.body(), error.code, error.headers)


def parse_json_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}", "INVALID_ARGUMENT") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    return parsed


def either_field(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    """Read a field under its REST (camelCase) or proto (snake_case) name."""
    return mapping.get(camel, mapping.get(snake))
