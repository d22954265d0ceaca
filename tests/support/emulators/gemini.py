"""In-process HTTP emulator of the Gemini Developer API, for tests and benchmarks.

The emulator is a real HTTP server (``http.server.ThreadingHTTPServer`` on
127.0.0.1, free port by default) that speaks the REST dialect the official
``google-genai`` SDK (checked against 3.3.0) sends in *Gemini Developer API*
mode (not Vertex). It uses only the Python standard library.

Pointing the real SDK at it
---------------------------
Either pass the base URL explicitly::

    from google import genai
    from google.genai import types

    with GeminiEmulator() as emu:
        client = genai.Client(
            api_key="fake", http_options=types.HttpOptions(base_url=emu.url)
        )

or set ``GOOGLE_GEMINI_BASE_URL=<emu.url>`` before creating the client.
SDK facts this relies on (``google/genai/_base_url.py`` and
``_api_client.py``):

* ``genai.Client`` resolves its base URL as: ``http_options.base_url``, then
  ``google.genai._base_url.set_default_base_urls(...)``, then the environment
  variable ``GOOGLE_GEMINI_BASE_URL`` (``GOOGLE_VERTEX_BASE_URL`` in Vertex
  mode). It is read when the client is constructed.
* An API key is still mandatory in Gemini mode (``api_key=`` or the
  ``GOOGLE_API_KEY`` / ``GEMINI_API_KEY`` variables); it travels in the
  ``x-goog-api-key`` header. ``GOOGLE_GENAI_USE_VERTEXAI`` must not be true.
* The URL is ``<base_url>/<api_version>/<path>``. In SDK 3.3.0 the default
  Gemini ``api_version`` is ``v1`` (not ``v1beta``!); ``GOOGLE_GENAI_API_VERSION``
  or ``HttpOptions(api_version=...)`` change it. The emulator accepts any
  ``/v<N>[alpha|beta]/`` prefix, plus the ``/upload/<ver>/`` and
  ``/download/<ver>/`` forms.
* The SDK never retries by default (``retry_options`` unset), and only HTTP
  200 is success (``errors.APIError.raise_for_response``); 4xx raise
  ``google.genai.errors.ClientError`` and 5xx ``ServerError``, whose
  ``.details`` is the whole JSON error body.

Emulated endpoints (``<ver>`` = any API version)
------------------------------------------------
* ``POST /<ver>/models/{m}:generateContent`` - ``client.models.generate_content``
* ``POST /<ver>/models/{m}:batchGenerateContent`` - ``client.batches.create``
  with inline ``batch.inputConfig.requests.requests[]`` (``{"request": ...,
  "metadata": {"key": ...}}``) or ``batch.inputConfig.fileName`` (a JSONL file
  of ``{"key": ..., "request": {...}}`` lines, REST or proto field names)
* ``GET /<ver>/batches/{id}`` - ``client.batches.get``
* ``GET /<ver>/batches?pageSize=&pageToken=`` - ``client.batches.list``
  (``{"operations": [...], "nextPageToken": ...}``, oldest job first)
* ``POST /<ver>/batches/{id}:cancel`` - ``client.batches.cancel``
* ``DELETE /<ver>/batches/{id}`` - ``client.batches.delete``
* ``POST /upload/<ver>/files`` - ``client.files.upload``: resumable ``start``
  (body ``{"file": {"mime_type", "size_bytes", "display_name"}}``, snake_case
  as the SDK sends it) answered with an absolute ``X-Goog-Upload-URL``; then
  ``upload, finalize`` chunks (no API key on those) answered with
  ``X-Goog-Upload-Status: final`` and ``{"file": {...}}``
* ``GET /<ver>/files/{id}``, ``GET /<ver>/files``, ``DELETE /<ver>/files/{id}``
* ``GET /<ver>/files/{id}:download?alt=media`` (also ``/download/<ver>/...``)
  - ``client.files.download``; only ``source: GENERATED`` files (batch
  results ``files/batch-<id>``) can be downloaded, as on the real service

Batches are long-running operations on the wire: ``batches/{id}`` returns
``{"name", "metadata": {GenerateContentBatch}, "done", "response"|"error"}``.
``metadata.state`` is ``BATCH_STATE_*`` (the SDK maps it to ``JOB_STATE_*``)
and ``metadata.output`` holds ``{"inlinedResponses": {"inlinedResponses":
[...]}}`` or ``{"responsesFile": "files/batch-<id>"}``. The SDK turns that into
``BatchJob.dest.inlined_responses`` / ``BatchJob.dest.file_name``. The SDK does
not map the operation's ``error`` into ``BatchJob.error`` for the Gemini API,
so a FAILED job is only visible as ``state == JOB_STATE_FAILED`` (read
``emu.job(name)["error"]`` for the status).

Batch job life cycle (``batch_mode``)
-------------------------------------
* ``"manual"`` (default): jobs stay ``PENDING`` until the test calls
  ``emu.advance(name)``, ``emu.set_state(name, state)`` or ``emu.complete_all()``.
* ``"per_poll"``: every ``batches.get`` moves the job one step
  ``PENDING -> RUNNING -> <final state>`` before answering.
* ``"auto"``: a job finishes after ``complete_after_polls`` gets or
  ``complete_after_seconds`` seconds, whichever comes first (RUNNING in between).

The final state and per-item behaviour come from a :class:`BatchPlan`
(``emu.plan_next_batch(...)`` for the next created job, ``emu.plan_batch(name,
...)`` for an existing one, ``emu.set_default_batch_plan(...)`` for all).

Answers
-------
A prompt (the ``user`` texts of ``contents``) with a Markdown table whose header
row starts with ``| issue_id |`` and whose data rows start with ``| <int> |``
gets the text of a JSON array with one object per issue id::

    {"issue_id": 7, "error_category": "SPELLING_ERROR",
     "confidence_score": 83, "reasoning": "..."}

The category and score come from a SHA-256 of the row's text, so the same row
always gets the same verdict. Pass ``answer_fn(prompt_text) -> str`` to answer
differently. Responses carry ``finishReason: STOP``, ``usageMetadata``,
``modelVersion`` and ``responseId``.

Usage metadata is counted from the text received and sent, with a word-piece
approximation of a SentencePiece tokenizer (``count_tokens``: a word is one token
per six letters, a digit one token, a newline one, a single space nothing, a run
of one punctuation character one per four), not with Gemini's own tokenizer:
``promptTokenCount`` covers the system instruction and the contents,
``candidatesTokenCount`` the answer, and ``thoughtsTokenCount`` appears when
thinking is on (``thinkingBudget`` > 0: up to the budget; -1 or no thinking
config: dynamic), as on the real service.

Fault API
---------
``emu.inject(fault, times=1, endpoint=None, path_contains=None, **params)``
queues one-shot faults (``times=None`` = until ``emu.clear_faults()``):

* HTTP faults, answered instead of the real response:
  ``Fault.RATE_LIMIT_MINUTE`` / ``Fault.RATE_LIMIT_DAY`` (429
  ``RESOURCE_EXHAUSTED`` with ``google.rpc.Help``, ``QuotaFailure`` quota ids
  ``GenerateRequestsPerMinutePerProjectPerModel`` /
  ``GenerateRequestsPerDayPerProjectPerModel`` and ``RetryInfo``
  ``retryDelay: "2s"``; params ``retry_delay``, ``quota_id``, ``quota_value``,
  ``free_tier``), ``Fault.INTERNAL`` (500), ``Fault.UNAVAILABLE`` (503),
  ``Fault.HTTP_ERROR`` (params ``status``, ``grpc_status``, ``message``).
  ``endpoint`` (an :class:`Endpoint` name or a collection of them) restricts
  which calls consume it; by default any API call except upload chunks.
* Answer faults, applied to the next successful ``generateContent`` answer:
  ``Fault.MALFORMED_JSON``, ``Fault.TRUNCATED_JSON`` (finishReason
  ``MAX_TOKENS``), ``Fault.MISSING_IDS`` (last object dropped),
  ``Fault.UNKNOWN_IDS`` (extra object with an id not in the prompt),
  ``Fault.DUPLICATE_IDS`` (first id repeated with another category),
  ``Fault.SAFETY_BLOCK`` (finishReason ``SAFETY``, no content).

Batch faults are set with a :class:`BatchPlan`: ``final_state`` ``FAILED``
(with ``error``), ``EXPIRED`` or ``CANCELLED``; ``item_errors`` (per-item
``error`` instead of ``response``, inline and JSONL); ``answer_faults`` (the
answer faults above, per item); ``shuffle`` (responses in another order);
``drop_metadata`` (inline responses without ``metadata``, JSONL lines without
``key``). Items are addressed by their key (str) or 0-based index (int).

API keys: no key -> 403 ``PERMISSION_DENIED``; a key in ``invalid_api_keys``
(default ``{"invalid"}``) or, if ``api_keys`` is given, any key not in it ->
400 ``INVALID_ARGUMENT`` with ``ErrorInfo.reason == "API_KEY_INVALID"``.

Latency and rate limit (a realistic API): each successful ``generateContent``
answer waits ``latency`` seconds plus ``latency_per_item`` per flag row of its
prompt. With ``requests_per_minute=N``, at most N ``generateContent`` calls are
accepted per ``rate_window`` seconds (sliding, 60 by default); beyond that the
call gets the per-minute 429 ``RESOURCE_EXHAUSTED`` above, whose ``RetryInfo``
says when the oldest accepted call leaves the window. Refused calls do not
count. ``stats()["rate_limited"]`` counts them; ``answered``, ``answered_span``
(seconds from the first successful answer to the last) and ``answered_at``
(each answer's time after the first) give the throughput.

Counters: ``emu.stats()`` (``http_requests``, ``generate_content_calls``,
``batch_creations``, ``endpoint_counts``, ``path_counts``,
``max_inline_batch_bytes``, ``uploaded_file_sizes``, ...), ``emu.requests``
(bounded list of :class:`RecordedRequest` with headers and body) and
``emu.find_requests(needle)`` to grep them, e.g. for a leaked secret.

Standalone (benchmarks)::

    python tests/support/emulators/gemini.py --port 0 --latency 0.5 --auto-complete

prints the base URL as the first stdout line and serves until SIGINT/SIGTERM.
Then ``GET <url>/_emulator/stats`` returns the counters,
``POST <url>/_emulator/complete_all`` finishes jobs, ``POST
<url>/_emulator/faults`` with ``{"fault": ..., "times": ..., ...}`` injects
(``DELETE`` clears) and ``POST <url>/_emulator/reset`` / ``reset_stats``
forget state / counters. These control paths need no key and are not counted.

Sharing one emulator between tests: ``emu.reset()`` forgets jobs, files,
faults and plans and zeroes the counters (settings stay). Creating a
``genai.Client`` costs ~0.1 s (SSL context), so a module-scoped emulator and
client plus ``reset()`` per test keeps suites fast. Keep a reference to each
client: a garbage-collected ``genai.Client`` closes its HTTP connection pool
and later calls through its ``.models`` / ``.batches`` fail.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import random
import re
import secrets
import signal
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "CATEGORIES",
    "BatchPlan",
    "Endpoint",
    "Fault",
    "GeminiEmulator",
    "RecordedRequest",
    "default_answer",
    "parse_issue_rows",
]

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

_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_BATCH_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
_GRPC_CODES = {
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}
_HTTP_STATUS_NAMES = {
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
_MISSING_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established "
    "identity). Please use API Key or other form of API consumer identity to "
    "call this API."
)
_INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
_INTERNAL_MESSAGE = (
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
_UNAVAILABLE_MESSAGE = "The model is overloaded. Please try again later."
_NOT_FOUND_MESSAGE = "Requested entity was not found."
_DEFAULT_ITEM_ERROR: dict[str, Any] = {
    "code": 13,
    "message": "Internal error encountered while processing this request.",
}
_DEFAULT_JOB_ERROR: dict[str, Any] = {
    "code": 13,
    "message": "Batch processing failed due to an internal error.",
}
_CHUNK_GRANULARITY = 8 * 1024 * 1024


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
        self.final_state = _normalise_state(self.final_state)
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
                    return dict(self.item_errors[ident] or _DEFAULT_ITEM_ERROR)
            elif ident in self.item_errors:
                return dict(_DEFAULT_ITEM_ERROR)
        return None

    def answer_fault(self, key: str | None, index: int) -> str | None:
        """The answer fault planned for an item, or None."""
        if key is not None and key in self.answer_faults:
            return self.answer_faults[key]
        return self.answer_faults.get(index)


@dataclass
class RecordedRequest:
    """One HTTP request as received (body truncated to ``record_body_limit``)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    body_size: int
    endpoint: str
    timestamp: float
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


# --------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------

_HEADER_RE = re.compile(r"^\s*\|\s*issue_id\s*\|")
_ROW_RE = re.compile(r"^\s*\|\s*(-?\d+)\s*\|")


def parse_issue_rows(prompt_text: str) -> list[tuple[int, str]]:
    """``(issue_id, row_text)`` for each data row of the issue tables."""
    rows: list[tuple[int, str]] = []
    in_table = False
    for line in prompt_text.splitlines():
        if _HEADER_RE.match(line):
            in_table = True
            continue
        if not in_table:
            continue
        if not line.strip().startswith("|"):
            in_table = False
            continue
        match = _ROW_RE.match(line)
        if match:
            rows.append((int(match.group(1)), line.strip()))
    return rows


def _verdict(issue_id: int, row_text: str) -> dict[str, Any]:
    digest = hashlib.sha256(row_text.encode("utf-8")).digest()
    category = CATEGORIES[int.from_bytes(digest[:4], "big") % len(CATEGORIES)]
    return {
        "issue_id": issue_id,
        "error_category": category,
        "confidence_score": 50 + digest[4] % 51,
        "reasoning": (
            f"Emulated verdict for issue {issue_id}: row hash {digest.hex()[:8]} maps to {category}."
        ),
    }


def default_answer(prompt_text: str) -> str:
    """The emulator's deterministic answer to a categorisation prompt."""
    seen: set[int] = set()
    verdicts = []
    for issue_id, row in parse_issue_rows(prompt_text):
        if issue_id in seen:
            continue
        seen.add(issue_id)
        verdicts.append(_verdict(issue_id, row))
    return json.dumps(verdicts, indent=2)


def _apply_answer_fault(fault: str, text: str) -> tuple[str, str]:
    """Corrupt an answer; returns ``(text, finish_reason)``."""
    if fault == Fault.MALFORMED_JSON:
        return text.strip().replace('"', "'")[:-1] + ", }", "STOP"
    if fault == Fault.TRUNCATED_JSON:
        stripped = text.strip()
        cut = max(1, min(len(stripped) - 1, int(len(stripped) * 0.6)))
        return stripped[:cut], "MAX_TOKENS"
    try:
        items = json.loads(text)
    except ValueError:
        return text, "STOP"
    if not isinstance(items, list):
        return text, "STOP"
    objects = [item for item in items if isinstance(item, dict)]
    if fault == Fault.MISSING_IDS:
        items = items[:-1]
    elif fault == Fault.UNKNOWN_IDS:
        ids = [o["issue_id"] for o in objects if isinstance(o.get("issue_id"), int)]
        unknown = (max(ids) if ids else 0) + 1000
        items.append(_verdict(unknown, f"| {unknown} | unknown issue |"))
    elif fault == Fault.DUPLICATE_IDS and objects:
        duplicate = dict(objects[0])
        current = duplicate.get("error_category")
        index = CATEGORIES.index(current) if current in CATEGORIES else 0
        duplicate["error_category"] = CATEGORIES[(index + 1) % len(CATEGORIES)]
        duplicate["reasoning"] = "Second, conflicting verdict for the same issue."
        items.append(duplicate)
    return json.dumps(items, indent=2), "STOP"


def _content_texts(content: Any) -> list[str]:
    if not isinstance(content, dict):
        return []
    parts = content.get("parts") or []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _prompt_text(request: Mapping[str, Any]) -> str:
    contents = request.get("contents") or []
    if isinstance(contents, dict):
        contents = [contents]
    texts: list[str] = []
    for content in contents:
        if isinstance(content, dict) and content.get("role", "user") == "user":
            texts.extend(_content_texts(content))
    return "\n".join(texts)


def _prompt_tokens(request: Mapping[str, Any]) -> int:
    contents = request.get("contents") or []
    if isinstance(contents, dict):
        contents = [contents]
    total = sum(count_tokens(t) for c in contents for t in _content_texts(c))
    system = request.get("systemInstruction") or request.get("system_instruction")
    return max(1, total + sum(count_tokens(t) for t in _content_texts(system)))


_PIECE = re.compile(r"[^\W\d_]+|\d|\r?\n|[ \t]+|_+|([^\w\s])\1*")


def count_tokens(text: str) -> int:
    """Tokens of ``text`` by a word-piece approximation (see the module docstring)."""
    count = 0
    for match in _PIECE.finditer(text):
        piece = match.group(0)
        first = piece[0]
        if first.isalpha():
            count += math.ceil(len(piece) / 6)
        elif first.isdigit() or first in "\r\n":
            count += 1
        elif first in " \t":
            count += 0 if piece == " " else 1
        else:
            count += math.ceil(len(piece) / 4)
    return count


def _thinking_tokens(request: Mapping[str, Any], prompt_tokens: int) -> int:
    """Thought tokens the emulated model spends: none when the budget is 0, else a
    deterministic share of the prompt, up to the budget (dynamic: up to 8,192)."""
    config = request.get("generationConfig") or request.get("generation_config") or {}
    thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget", -1))
    if budget == 0:
        return 0
    wanted = 64 + prompt_tokens // 20
    return min(wanted, 8192 if budget is None or budget < 0 else budget)


# --------------------------------------------------------------------------
# Internal state
# --------------------------------------------------------------------------


def _normalise_state(state: str) -> str:
    short = state.upper()
    for prefix in ("JOB_STATE_", "BATCH_STATE_"):
        if short.startswith(prefix):
            short = short[len(prefix) :]
    if short not in STATES:
        raise ValueError(f"unknown batch state {state!r}")
    return short


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime:
    return datetime.now(UTC)


class _ApiError(Exception):
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
        self.status = status or _HTTP_STATUS_NAMES.get(code, "UNKNOWN")
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
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Item:
    index: int
    key: str | None
    metadata: dict[str, Any] | None
    request: dict[str, Any] | None
    parse_error: str | None = None


@dataclass
class _Job:
    name: str
    model: str
    display_name: str | None
    create_time: datetime
    created_mono: float
    items: list[_Item]
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
class _File:
    name: str
    display_name: str | None
    mime_type: str
    data: bytes
    create_time: datetime
    source: str


@dataclass
class _Upload:
    upload_id: str
    declared_size: int | None
    mime_type: str
    name: str | None
    display_name: str | None
    buffer: bytearray = field(default_factory=bytearray)


@dataclass
class _QueuedFault:
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
class _Route:
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


def _route(method: str, path: str, query: Mapping[str, str]) -> _Route:
    match = _PATH_RE.match(path)
    if not match:
        return _Route(Endpoint.UNKNOWN)
    kind, version, rest = match.group("kind"), match.group("ver"), match.group("rest")
    if kind == "upload":
        if rest == "files" and method == "POST":
            if "upload_id" in query:
                return _Route(Endpoint.FILES_UPLOAD_CHUNK, version)
            return _Route(Endpoint.FILES_UPLOAD, version)
        return _Route(Endpoint.UNKNOWN, version)
    if m := _MODEL_METHOD_RE.match(rest):
        if method != "POST":
            return _Route(Endpoint.UNKNOWN, version)
        endpoint = (
            Endpoint.GENERATE_CONTENT
            if m.group("method") == "generateContent"
            else Endpoint.BATCH_GENERATE_CONTENT
        )
        return _Route(endpoint, version, model=m.group("model"))
    if rest == "batches" and method == "GET":
        return _Route(Endpoint.BATCHES_LIST, version)
    if m := _BATCH_RE.match(rest):
        name = f"batches/{m.group('id')}"
        if m.group("cancel"):
            if method == "POST":
                return _Route(Endpoint.BATCHES_CANCEL, version, name)
        elif method == "GET":
            return _Route(Endpoint.BATCHES_GET, version, name)
        elif method == "DELETE":
            return _Route(Endpoint.BATCHES_DELETE, version, name)
        return _Route(Endpoint.UNKNOWN, version)
    if rest == "files" and method == "GET":
        return _Route(Endpoint.FILES_LIST, version)
    if m := _FILE_RE.match(rest):
        name = f"files/{m.group('id')}"
        if m.group("download"):
            if method == "GET":
                return _Route(Endpoint.FILES_DOWNLOAD, version, name)
        elif method == "GET":
            return _Route(Endpoint.FILES_GET, version, name)
        elif method == "DELETE":
            return _Route(Endpoint.FILES_DELETE, version, name)
    return _Route(Endpoint.UNKNOWN, version)


def _json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> _Response:
    out = {"Content-Type": "application/json; charset=UTF-8"}
    out.update(headers or {})
    return _Response(status, json.dumps(obj, indent=2).encode("utf-8"), out)


def _error_response(error: _ApiError) -> _Response:
    return _json_response(error.body(), error.code, error.headers)


def _parse_json_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise _ApiError(400, f"Invalid JSON payload received. {exc}", "INVALID_ARGUMENT") from None
    if not isinstance(parsed, dict):
        raise _ApiError(400, "Invalid JSON payload received. Expected an object.")
    return parsed


def _get(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    """Read a field under its REST (camelCase) or proto (snake_case) name."""
    return mapping.get(camel, mapping.get(snake))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: GeminiEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.emulator.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GeminiEmulator/1.0"
    timeout = 60
    # Headers and body are two writes; without TCP_NODELAY every keep-alive
    # response waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

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
        response = self.server.emulator._handle(self.command, self.path, list(self.headers.items()), body)
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


# --------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------


class GeminiEmulator:
    """A threaded fake Gemini Developer API server (see the module docstring).

    Use it as a context manager (``with GeminiEmulator() as emu: emu.url``) or
    call :meth:`start` / :meth:`stop`. All public methods are thread-safe.
    """

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
        self.host = host
        self._requested_port = port
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
        self.verbose = verbose

        self._lock = threading.RLock()
        self._default_plan = default_batch_plan or BatchPlan()
        self._next_plans: deque[BatchPlan] = deque()
        self._faults: list[_QueuedFault] = []
        self._jobs: dict[str, _Job] = {}
        self._files: dict[str, _File] = {}
        self._uploads: dict[str, _Upload] = {}
        self._requests: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._response_seq = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset_stats()

    # -- life cycle --------------------------------------------------------

    def start(self) -> GeminiEmulator:
        """Bind the socket and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="gemini-emulator",
            daemon=True,
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

    def __enter__(self) -> GeminiEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ``HttpOptions(base_url=...)`` / ``GOOGLE_GEMINI_BASE_URL``."""
        return f"http://{self.host}:{self.port}"

    # -- batch control -----------------------------------------------------

    def set_default_batch_plan(self, plan: BatchPlan | None = None, **kwargs: Any) -> None:
        """Plan used by jobs with no specific plan (kwargs build a BatchPlan)."""
        with self._lock:
            self._default_plan = plan or BatchPlan(**kwargs)

    def plan_next_batch(self, plan: BatchPlan | None = None, **kwargs: Any) -> BatchPlan:
        """Queue a plan consumed by the next created batch job."""
        built = plan or BatchPlan(**kwargs)
        with self._lock:
            self._next_plans.append(built)
        return built

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
        target = _normalise_state(state)
        with self._lock:
            job = self._public_job(name)
            if target in TERMINAL_STATES:
                if error is not None:
                    job.plan = replace(job.plan, error=error)
                self._finish(job, target)
            else:
                job.state = target
                job.update_time = _now()
                job.end_time = None
                job.output = None
                job.error = None

    def complete_all(self, state: str | None = None) -> list[str]:
        """Finish every unfinished job (in its planned or the given state)."""
        done = []
        with self._lock:
            for job in self._jobs.values():
                if job.state not in TERMINAL_STATES:
                    self._finish(job, _normalise_state(state) if state else job.plan.final_state)
                    done.append(job.name)
        return done

    # -- faults ------------------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        times: int | None = 1,
        endpoint: str | Collection[str] | None = None,
        path_contains: str | None = None,
        **params: Any,
    ) -> None:
        """Queue a fault for the next ``times`` matching calls (None = forever)."""
        if fault not in Fault.HTTP and fault not in Fault.ANSWER:
            raise ValueError(f"unknown fault {fault!r}")
        if fault == Fault.HTTP_ERROR and "status" not in params:
            raise ValueError("Fault.HTTP_ERROR needs status=<int>")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        endpoints: frozenset[str] | None
        if endpoint is None:
            endpoints = None
        elif isinstance(endpoint, str):
            endpoints = frozenset({endpoint})
        else:
            endpoints = frozenset(endpoint)
        if fault in Fault.ANSWER:
            endpoints = frozenset({Endpoint.GENERATE_CONTENT})
        with self._lock:
            self._faults.append(_QueuedFault(fault, times, endpoints, path_contains, params))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[str]:
        with self._lock:
            return [f.fault for f in self._faults]

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
            self._next_plans.clear()
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
        current state of each job.
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

    @property
    def requests(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first (bounded by ``record_limit``)."""
        with self._lock:
            return list(self._requests)

    def find_requests(self, needle: str | bytes) -> list[RecordedRequest]:
        """Recorded requests whose path, query, headers or body contain needle."""
        return [r for r in self.requests if r.contains(needle)]

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

    def _handle(
        self, method: str, raw_path: str, header_items: list[tuple[str, str]], body: bytes
    ) -> _Response:
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in header_items}
        if path.startswith("/_emulator/"):
            try:
                return self._handle_control(method, path, body)
            except (ValueError, KeyError, TypeError) as exc:
                return _error_response(_ApiError(400, str(exc)))
        route = _route(method, path, query)
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
        except _ApiError as exc:
            response = _error_response(exc)
            if route.endpoint == Endpoint.FILES_UPLOAD_CHUNK:
                # Without this header the SDK's chunk loop sleeps and retries.
                response.headers["X-Goog-Upload-Status"] = "final"
        except Exception:  # pragma: no cover - emulator bug
            if self.verbose:
                traceback.print_exc()
            response = _error_response(_ApiError(500, _INTERNAL_MESSAGE))
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
        route: _Route,
    ) -> _Response:
        if route.endpoint == Endpoint.UNKNOWN:
            raise _ApiError(404, f"Method not found: {method} {path}", "NOT_FOUND")
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
        raise _ApiError(404, f"Method not found: {method} {path}", "NOT_FOUND")

    def _check_api_key(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        key = headers.get("x-goog-api-key") or query.get("key")
        if not key:
            raise _ApiError(403, _MISSING_KEY_MESSAGE, "PERMISSION_DENIED")
        if key in self.invalid_api_keys or (self.api_keys is not None and key not in self.api_keys):
            raise _ApiError(
                400,
                _INVALID_KEY_MESSAGE,
                "INVALID_ARGUMENT",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": _INVALID_KEY_MESSAGE,
                    },
                ],
            )

    def _take_fault(self, endpoint: str, path: str, *, http: bool) -> _QueuedFault | None:
        kinds = Fault.HTTP if http else Fault.ANSWER
        with self._lock:
            for queued in self._faults:
                if queued.fault in kinds and queued.matches(endpoint, path):
                    if queued.remaining is not None:
                        queued.remaining -= 1
                        if queued.remaining <= 0:
                            self._faults.remove(queued)
                    self._faults_served[queued.fault] += 1
                    return queued
        return None

    def _raise_http_fault(self, queued: _QueuedFault, model: str) -> None:
        params = queued.params
        if queued.fault in (Fault.RATE_LIMIT_MINUTE, Fault.RATE_LIMIT_DAY):
            raise self._quota_error(queued.fault == Fault.RATE_LIMIT_DAY, model, **params)
        if queued.fault == Fault.INTERNAL:
            raise _ApiError(500, params.get("message", _INTERNAL_MESSAGE), "INTERNAL")
        if queued.fault == Fault.UNAVAILABLE:
            raise _ApiError(503, params.get("message", _UNAVAILABLE_MESSAGE), "UNAVAILABLE")
        status = int(params["status"])
        raise _ApiError(
            status,
            params.get("message", f"Injected HTTP {status} error."),
            params.get("grpc_status"),
            details=params.get("details"),
        )

    @staticmethod
    def _quota_error(
        per_day: bool,
        model: str,
        *,
        retry_delay: str | None = "2s",
        quota_id: str | None = None,
        quota_value: str | int | None = None,
        free_tier: bool = False,
        message: str | None = None,
    ) -> _ApiError:
        model_id = model.split("/", 1)[-1] if model else "gemini-2.5-flash"
        if free_tier:
            metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        elif per_day:
            metric = "generativelanguage.googleapis.com/generate_requests_per_model_per_day"
        else:
            metric = "generativelanguage.googleapis.com/generate_requests_per_model"
        base_id = (
            "GenerateRequestsPerDayPerProjectPerModel"
            if per_day
            else "GenerateRequestsPerMinutePerProjectPerModel"
        )
        quota_id = quota_id or (base_id + ("-FreeTier" if free_tier else ""))
        if quota_value is None:
            quota_value = (250 if per_day else 10) if free_tier else (10000 if per_day else 1000)
        retry_text = ""
        if retry_delay:
            retry_text = f"\nPlease retry in {retry_delay.rstrip('s')}s."
        message = message or (
            "You exceeded your current quota, please check your plan and billing "
            "details. For more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your "
            "current usage, head to: https://ai.dev/usage?tab=rate-limit. \n"
            f"* Quota exceeded for metric: {metric}, limit: {quota_value}, "
            f"model: {model_id}{retry_text}"
        )
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": metric,
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model_id},
                        "quotaValue": str(quota_value),
                    }
                ],
            },
        ]
        if retry_delay:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
        return _ApiError(429, message, "RESOURCE_EXHAUSTED", details=details)

    # -- models ------------------------------------------------------------

    def _answer_text(self, request: Mapping[str, Any]) -> str:
        answer_fn = self.answer_fn or default_answer
        return answer_fn(_prompt_text(request))

    def _generate_response(self, model: str, request: Mapping[str, Any], fault: str | None) -> dict[str, Any]:
        text = self._answer_text(request)
        finish = "STOP"
        if fault is not None and fault != Fault.SAFETY_BLOCK:
            text, finish = _apply_answer_fault(fault, text)
        prompt_tokens = _prompt_tokens(request)
        thinking_tokens = 0 if fault == Fault.SAFETY_BLOCK else _thinking_tokens(request, prompt_tokens)
        with self._lock:
            self._response_seq += 1
            seq = self._response_seq
        response_id = base64.urlsafe_b64encode(
            hashlib.sha256(f"{seq}:{time.time_ns()}".encode()).digest()[:15]
        ).decode()
        candidate: dict[str, Any]
        if fault == Fault.SAFETY_BLOCK:
            candidate = {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": [
                    {
                        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                        "probability": "HIGH",
                        "blocked": True,
                    }
                ],
            }
            output_tokens = 0
        else:
            candidate = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish,
                "index": 0,
            }
            output_tokens = max(1, count_tokens(text))
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens + output_tokens + thinking_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }
        if output_tokens:
            usage["candidatesTokenCount"] = output_tokens
        if thinking_tokens:
            usage["thoughtsTokenCount"] = thinking_tokens
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model.split("/", 1)[-1],
            "responseId": response_id,
        }

    def _h_generate(self, route: _Route, path: str, body: bytes) -> _Response:
        request = _parse_json_body(body)
        if not request.get("contents"):
            raise _ApiError(400, "* GenerateContentRequest.contents: contents is not specified\n")
        self._check_rate(route.model)
        fault = self._take_fault(route.endpoint, path, http=False)
        response = self._generate_response(route.model, request, fault.fault if fault else None)
        # only successful answers are delayed: a base latency plus a time per flag of the prompt
        latency = self.latency
        if self.latency_per_item > 0:
            latency += self.latency_per_item * len(parse_issue_rows(_prompt_text(request)))
        if latency > 0:
            time.sleep(latency)
        with self._lock:
            self._answered_at.append(time.monotonic())
        return _json_response(response)

    def _check_rate(self, model: str) -> None:
        """``requests_per_minute``: at most that many generateContent starts per ``rate_window``
        seconds (60 by default); beyond, 429 with the time until a slot frees as RetryInfo."""
        limit = self.requests_per_minute
        if not limit:
            return
        now = time.monotonic()
        with self._lock:
            while self._accepted and self._accepted[0] <= now - self.rate_window:
                self._accepted.popleft()
            if len(self._accepted) >= limit:
                self._rate_limited += 1
                delay = self._accepted[0] + self.rate_window - now
                retry = f"{max(delay, 0.001):.3f}s"
                raise self._quota_error(False, model, retry_delay=retry, quota_value=limit)
            self._accepted.append(now)

    def answered_at(self) -> list[float]:
        """``time.monotonic()`` of every successful generateContent answer, in order."""
        with self._lock:
            return list(self._answered_at)

    # -- batches -----------------------------------------------------------

    def _h_batch_create(self, route: _Route, body: bytes) -> _Response:
        payload = _parse_json_body(body)
        batch = payload.get("batch")
        if not isinstance(batch, dict):
            raise _ApiError(400, "* BatchGenerateContentRequest.batch: batch is required\n")
        input_config = _get(batch, "inputConfig", "input_config") or {}
        file_name = _get(input_config, "fileName", "file_name")
        requests_wrapper = input_config.get("requests")
        items: list[_Item] = []
        inline_bytes = 0
        if file_name:
            with self._lock:
                source = self._files.get(file_name)
            if source is None:
                raise _ApiError(404, _NOT_FOUND_MESSAGE, "NOT_FOUND")
            items = self._items_from_jsonl(source.data)
        elif isinstance(requests_wrapper, dict) and requests_wrapper.get("requests"):
            inline_bytes = len(body)
            with self._lock:
                self._max_inline_bytes = max(self._max_inline_bytes, inline_bytes)
            if inline_bytes > self.max_inline_bytes:
                raise _ApiError(
                    400,
                    f"Request payload size exceeds the limit: {self.max_inline_bytes} bytes.",
                )
            for index, entry in enumerate(requests_wrapper["requests"]):
                entry = entry if isinstance(entry, dict) else {}
                metadata = entry.get("metadata")
                key = metadata.get("key") if isinstance(metadata, dict) else None
                request = entry.get("request")
                if not isinstance(request, dict) or not request.get("contents"):
                    raise _ApiError(
                        400,
                        f"* BatchGenerateContentRequest.batch.input_config.requests"
                        f".requests[{index}].request.contents: contents is not specified\n",
                    )
                items.append(_Item(index, None if key is None else str(key), metadata, request))
        else:
            raise _ApiError(
                400,
                "* BatchGenerateContentRequest.batch.input_config: "
                "either requests or file_name must be set\n",
            )
        now = _now()
        with self._lock:
            plan = self._next_plans.popleft() if self._next_plans else self._default_plan
            name = f"batches/{secrets.token_hex(10)}"
            job = _Job(
                name=name,
                model=route.model,
                display_name=_get(batch, "displayName", "display_name"),
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
            return _json_response(self._job_wire(job))

    @staticmethod
    def _items_from_jsonl(data: bytes) -> list[_Item]:
        items: list[_Item] = []
        for line in data.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            index = len(items)
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("line is not a JSON object")
            except ValueError as exc:
                items.append(_Item(index, None, None, None, f"Invalid JSON line: {exc}"))
                continue
            key = entry.get("key")
            request = entry.get("request")
            item = _Item(index, None if key is None else str(key), None, None)
            if isinstance(request, dict) and request.get("contents"):
                item.request = request
            else:
                item.parse_error = "request.contents is not specified"
            items.append(item)
        return items

    def _job_or_raise(self, name: str) -> _Job:
        if not name.startswith("batches/"):
            name = f"batches/{name}"
        job = self._jobs.get(name)
        if job is None:
            raise _ApiError(404, _NOT_FOUND_MESSAGE, "NOT_FOUND")
        return job

    def _public_job(self, name: str) -> _Job:
        try:
            return self._job_or_raise(name)
        except _ApiError:
            raise KeyError(name) from None

    def _job_wire(self, job: _Job) -> dict[str, Any]:
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
            "@type": _BATCH_TYPE,
            "model": job.model,
        }
        if job.display_name is not None:
            metadata["displayName"] = job.display_name
        if job.input_file:
            metadata["inputConfig"] = {"fileName": job.input_file}
        metadata["createTime"] = _timestamp(job.create_time)
        if job.end_time is not None:
            metadata["endTime"] = _timestamp(job.end_time)
        metadata["updateTime"] = _timestamp(job.update_time or job.create_time)
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
                wire["response"] = {"@type": _BATCH_OUTPUT_TYPE, **job.output}
        return wire

    @staticmethod
    def _item_failed(job: _Job, item: _Item) -> bool:
        return item.parse_error is not None or job.plan.item_error(item.key, item.index) is not None

    def _advance(self, job: _Job) -> None:
        if job.state == "PENDING":
            job.state = "RUNNING"
            job.update_time = _now()
        elif job.state == "RUNNING":
            self._finish(job, job.plan.final_state)

    def _on_read(self, job: _Job, *, poll: bool) -> None:
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
                job.update_time = _now()

    def _finish(self, job: _Job, state: str) -> None:
        now = _now()
        job.state = state
        job.update_time = job.end_time = now
        job.output = None
        job.error = None
        if state == "FAILED":
            job.error = dict(job.plan.error or _DEFAULT_JOB_ERROR)
        elif state == "SUCCEEDED":
            job.output = self._build_output(job)

    def _build_output(self, job: _Job) -> dict[str, Any]:
        plan = job.plan
        results: list[tuple[_Item, dict[str, Any]]] = []
        for item in job.items:
            entry: dict[str, Any]
            error = plan.item_error(item.key, item.index)
            if item.parse_error is not None:
                entry = {"error": {"code": 3, "message": item.parse_error}}
            elif error is not None or item.request is None:
                entry = {"error": error or dict(_DEFAULT_ITEM_ERROR)}
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
        self._files[out_name] = _File(
            name=out_name,
            display_name=out_name.split("/", 1)[1],
            mime_type="application/jsonl",
            data=("\n".join(lines) + "\n").encode("utf-8"),
            create_time=_now(),
            source="GENERATED",
        )
        return {"responsesFile": out_name}

    def _h_batch_get(self, name: str) -> _Response:
        with self._lock:
            job = self._job_or_raise(name)
            self._on_read(job, poll=True)
            return _json_response(self._job_wire(job))

    def _page(self, items: list[Any], query: Mapping[str, str]) -> tuple[list[Any], str | None]:
        try:
            size = int(query.get("pageSize") or self.default_page_size)
        except ValueError:
            raise _ApiError(400, "Invalid pageSize.") from None
        size = max(1, min(size, 1000))
        token = query.get("pageToken")
        offset = 0
        if token:
            try:
                offset = int(base64.urlsafe_b64decode(token.encode()).decode().split(":")[1])
            except (ValueError, IndexError):
                raise _ApiError(400, "Invalid page token.") from None
        page = items[offset : offset + size]
        next_offset = offset + size
        next_token = None
        if next_offset < len(items):
            next_token = base64.urlsafe_b64encode(f"offset:{next_offset}".encode()).decode()
        return page, next_token

    def _h_batch_list(self, query: Mapping[str, str]) -> _Response:
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
            return _json_response(out)

    def _h_batch_cancel(self, name: str) -> _Response:
        with self._lock:
            job = self._job_or_raise(name)
            if job.state in TERMINAL_STATES:
                raise _ApiError(
                    400,
                    f"Batch {job.name} is already in a terminal state (BATCH_STATE_{job.state}).",
                    "FAILED_PRECONDITION",
                )
            self._finish(job, "CANCELLED")
            return _json_response({})

    def _h_batch_delete(self, name: str) -> _Response:
        with self._lock:
            job = self._job_or_raise(name)
            del self._jobs[job.name]
            return _json_response({})

    # -- files -------------------------------------------------------------

    def _file_wire(self, file: _File) -> dict[str, Any]:
        file_id = file.name.split("/", 1)[1]
        wire: dict[str, Any] = {"name": file.name}
        if file.display_name:
            wire["displayName"] = file.display_name
        wire.update(
            {
                "mimeType": file.mime_type,
                "sizeBytes": str(len(file.data)),
                "createTime": _timestamp(file.create_time),
                "updateTime": _timestamp(file.create_time),
                "expirationTime": _timestamp(file.create_time + timedelta(hours=48)),
                "sha256Hash": base64.b64encode(hashlib.sha256(file.data).hexdigest().encode()).decode(),
                "uri": f"{self.url}/v1beta/files/{file_id}",
                "state": "ACTIVE",
                "source": file.source,
            }
        )
        if file.source == "GENERATED":
            wire["downloadUri"] = f"{self.url}/download/v1beta/files/{file_id}:download?alt=media"
        return wire

    def _h_upload_start(self, route: _Route, headers: Mapping[str, str], body: bytes) -> _Response:
        if headers.get("x-goog-upload-protocol", "").lower() != "resumable":
            raise _ApiError(400, "Only the resumable upload protocol is emulated.")
        if headers.get("x-goog-upload-command", "").lower() != "start":
            raise _ApiError(400, "Expected X-Goog-Upload-Command: start.")
        payload = _parse_json_body(body)
        meta = payload.get("file") or {}
        declared = headers.get("x-goog-upload-header-content-length")
        mime_type = (
            headers.get("x-goog-upload-header-content-type")
            or _get(meta, "mimeType", "mime_type")
            or "application/octet-stream"
        )
        name = meta.get("name")
        with self._lock:
            if name and name in self._files:
                raise _ApiError(409, f"File {name} already exists.", "ALREADY_EXISTS")
            upload_id = secrets.token_urlsafe(24)
            self._uploads[upload_id] = _Upload(
                upload_id=upload_id,
                declared_size=int(declared) if declared else None,
                mime_type=mime_type,
                name=name,
                display_name=_get(meta, "displayName", "display_name"),
            )
        upload_url = (
            f"{self.url}/upload/{route.version}/files?upload_id={upload_id}&upload_protocol=resumable"
        )
        return _Response(
            200,
            b"",
            {
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-URL": upload_url,
                "X-Goog-Upload-Control-URL": upload_url,
                "X-Goog-Upload-Chunk-Granularity": str(_CHUNK_GRANULARITY),
                "Content-Type": "text/plain; charset=utf-8",
            },
        )

    def _h_upload_chunk(self, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> _Response:
        command = {c.strip() for c in headers.get("x-goog-upload-command", "").lower().split(",")}
        with self._lock:
            upload = self._uploads.get(query.get("upload_id", ""))
            if upload is None:
                raise _ApiError(404, "Upload session not found.", "NOT_FOUND")
            if "query" in command:
                return _Response(
                    200,
                    b"",
                    {
                        "X-Goog-Upload-Status": "active",
                        "X-Goog-Upload-Size-Received": str(len(upload.buffer)),
                    },
                )
            if "upload" in command:
                offset = int(headers.get("x-goog-upload-offset") or 0)
                if offset != len(upload.buffer):
                    raise _ApiError(
                        400,
                        f"Invalid upload offset {offset}, expected {len(upload.buffer)}.",
                    )
                upload.buffer.extend(body)
            if "finalize" not in command:
                return _Response(200, b"", {"X-Goog-Upload-Status": "active"})
            del self._uploads[upload.upload_id]
            if upload.declared_size is not None and upload.declared_size != len(upload.buffer):
                raise _ApiError(
                    400,
                    f"Upload size {len(upload.buffer)} does not match the declared "
                    f"X-Goog-Upload-Header-Content-Length {upload.declared_size}.",
                )
            name = upload.name or f"files/{secrets.token_hex(6)}"
            file = _File(
                name=name,
                display_name=upload.display_name,
                mime_type=upload.mime_type,
                data=bytes(upload.buffer),
                create_time=_now(),
                source="UPLOADED",
            )
            self._files[name] = file
            self._uploaded_sizes.append(len(file.data))
            response = _json_response({"file": self._file_wire(file)})
            response.headers["X-Goog-Upload-Status"] = "final"
            return response

    def _file_or_raise(self, name: str) -> _File:
        file = self._files.get(name)
        if file is None:
            file_id = name.split("/", 1)[-1]
            raise _ApiError(
                403,
                f"You do not have permission to access the File {file_id} or it may not exist.",
                "PERMISSION_DENIED",
            )
        return file

    def _h_file_get(self, name: str) -> _Response:
        with self._lock:
            return _json_response(self._file_wire(self._file_or_raise(name)))

    def _h_file_list(self, query: Mapping[str, str]) -> _Response:
        with self._lock:
            files = sorted(self._files.values(), key=lambda f: f.create_time)
            page, token = self._page(files, query)
            out: dict[str, Any] = {}
            if page:
                out["files"] = [self._file_wire(f) for f in page]
            if token:
                out["nextPageToken"] = token
            return _json_response(out)

    def _h_file_delete(self, name: str) -> _Response:
        with self._lock:
            self._file_or_raise(name)
            del self._files[name]
            return _json_response({})

    def _h_file_download(self, name: str, query: Mapping[str, str]) -> _Response:
        with self._lock:
            file = self._file_or_raise(name)
            if file.source != "GENERATED":
                raise _ApiError(
                    400,
                    f"Only generated files can be downloaded; {name} has source {file.source}.",
                    "INVALID_ARGUMENT",
                )
            if query.get("alt") != "media":
                return _json_response(self._file_wire(file))
            return _Response(200, file.data, {"Content-Type": file.mime_type})

    # -- control endpoints (standalone mode) ------------------------------

    def _handle_control(self, method: str, path: str, body: bytes) -> _Response:
        action = path.removeprefix("/_emulator/")
        if action == "stats" and method == "GET":
            return _json_response(self.stats())
        if action == "complete_all" and method == "POST":
            return _json_response({"completed": self.complete_all()})
        if action == "reset" and method == "POST":
            self.reset()
            return _json_response({})
        if action == "reset_stats" and method == "POST":
            self.reset_stats()
            return _json_response({})
        if action == "faults" and method == "POST":
            spec = json.loads(body or b"{}")
            fault = spec.pop("fault")
            self.inject(fault, **spec)
            return _json_response({"pending": self.pending_faults()})
        if action == "faults" and method == "DELETE":
            self.clear_faults()
            return _json_response({})
        raise KeyError(f"unknown control action {method} {action}")


# --------------------------------------------------------------------------
# Standalone entry point
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Gemini Developer API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per generateContent call")
    parser.add_argument("--latency-per-item", type=float, default=0.0, help="seconds more per flag")
    parser.add_argument("--requests-per-minute", type=int, default=None, help="429 beyond this per window")
    parser.add_argument("--rate-window", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument(
        "--auto-complete",
        action="store_true",
        help="batch jobs finish by themselves (see --complete-after-*)",
    )
    parser.add_argument("--batch-mode", choices=BATCH_MODES, default=None, help="overrides --auto-complete")
    parser.add_argument("--complete-after-polls", type=int, default=2)
    parser.add_argument("--complete-after-seconds", type=float, default=None)
    parser.add_argument("--api-key", action="append", default=None, help="accepted key (repeatable)")
    parser.add_argument("--invalid-key", action="append", default=None)
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    mode = args.batch_mode or ("auto" if args.auto_complete else "manual")
    emulator = GeminiEmulator(
        host=args.host,
        port=args.port,
        latency=args.latency,
        latency_per_item=args.latency_per_item,
        requests_per_minute=args.requests_per_minute,
        rate_window=args.rate_window,
        batch_mode=mode,
        complete_after_polls=args.complete_after_polls,
        complete_after_seconds=args.complete_after_seconds,
        api_keys=args.api_key,
        invalid_api_keys=args.invalid_key or ("invalid",),
        verbose=args.verbose,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with emulator:
        print(emulator.url, flush=True)
        while not stop.wait(0.5):
            pass
        print(json.dumps(emulator.stats()), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
