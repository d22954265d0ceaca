"""The provider interface and the request/answer records it exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Request:
    """One model call for (part of) a batch."""

    key: str
    system: str
    user: str
    batch: dict[str, Any]
    local_ids: set[int]


@dataclass
class Answer:
    text: str | None
    error: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    notes: list[str] = field(default_factory=list)


class Provider(Protocol):
    name: str
    model: str

    def generate(self, request: Request) -> Answer:
        """Answer one request synchronously.

        Transient failures are retried inside; what still fails comes back as
        ``Answer(text=None, error=...)``. A failure that no retry can fix (invalid key,
        daily quota spent) raises ProviderError with what to do.
        """
        ...
