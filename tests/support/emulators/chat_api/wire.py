"""The vocabulary of the chat-completion emulators: fault names, generic job states, batch plans,
the records of files, jobs and items, a parsed request, and the answer helpers (message text,
the schema wrapper, corrupted answers, multipart bodies)."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from support.emulators.gemini import CATEGORIES
from support.emulators.loopback import Response


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


class State:
    """Generic job states; each vendor renders them with its own names."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FINAL: frozenset[str] = frozenset({COMPLETED, FAILED, EXPIRED, CANCELLED})


BATCH_MODES = ("manual", "auto")


@dataclass
class BatchPlan:
    """How an emulated batch job ends and what its result files hold."""

    final_state: str = State.COMPLETED
    error_message: str = "The batch could not be processed."
    item_errors: Collection[int | str] = ()
    answer_faults: Mapping[int | str, str] = field(default_factory=dict)
    expire_after: int = 0
    shuffle: bool = False


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
    state: str = State.QUEUED
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


def tokens_of(chars: int) -> int:
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


def answer_wrapper(response_format: Any) -> str | None:
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


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), "")
