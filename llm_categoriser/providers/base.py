"""The provider interface: what every provider folder implements (docs/DESIGN.md §6).

A provider is a ``ProviderSpec`` (cheap to import: no SDK) registered by name in
``providers/__init__.py``. It builds a ``Provider`` for synchronous calls, and optionally a
``BatchBackend`` for its provider's batch API (submit, status, fetch, cancel). It says which
environment variables hold its key, what it adds to every batch fingerprint, how many API
slots one categorise job takes, and may derive per-flag hints from the document text when
the run is planned.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..categories import CATEGORY_NAMES
from ..costs.estimate import TokenCalibration
from ..costs.prices import NoPriceList, PriceList
from ..costs.usage import TokenUsage
from ..errors import ProviderError

if TYPE_CHECKING:
    from ..models import Issue
    from ..settings import Settings

__all__ = [
    "DEAD_STATES",
    "PENDING_STATES",
    "VERDICT_FIELDS",
    "Answer",
    "BatchBackend",
    "Created",
    "Provider",
    "ProviderError",
    "ProviderSpec",
    "Request",
    "Status",
    "verdict_properties",
]

# The fields of one verdict, with their JSON types: every provider's answer schema names them.
VERDICT_FIELDS = {
    "issue_id": "integer",
    "error_category": "string",
    "confidence_score": "integer",
    "reasoning": "string",
}


def verdict_properties(type_case: Callable[[str], str] = str.lower) -> dict[str, dict[str, Any]]:
    """``VERDICT_FIELDS`` as the properties of a JSON schema, the category an enum of the nine
    categories; ``type_case`` spells the type names as the API wants them (Gemini: upper case)."""
    return {
        name: {
            "type": type_case(kind),
            **({"enum": list(CATEGORY_NAMES)} if name == "error_category" else {}),
        }
        for name, kind in VERDICT_FIELDS.items()
    }


# Remote job states, as the backends report them (``RUNNING``, ``SUCCEEDED``, ...).
PENDING_STATES = {"PENDING", "QUEUED", "RUNNING", "UPDATING", "PAUSED", "UNSPECIFIED"}
DEAD_STATES = {"FAILED", "EXPIRED", "CANCELLED", "CANCELLING"}


@dataclass
class Request:
    """One model call for (part of) a batch: the planned batch and the flags asked about."""

    key: str
    system: str
    user: str
    batch: Any  # records.PlannedBatch
    local_ids: set[int]


@dataclass
class Answer:
    """A model's answer text, or why there is none, with the provider's own usage counts.

    ``input_tokens`` is the whole prompt, ``cached_tokens`` the part of it read from the
    provider's cache; ``output_tokens`` the answer without the model's thinking, which is
    ``thinking_tokens`` (a provider that reports reasoning inside its output count subtracts it).
    """

    text: str | None
    error: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens,
            cached_tokens=min(self.cached_tokens, self.input_tokens),
            output_tokens=self.output_tokens,
            thinking_tokens=self.thinking_tokens,
        )


class Provider(Protocol):
    name: str
    model: str

    def generate(self, request: Request) -> Answer:
        """Answer one request synchronously.

        Transient failures are retried inside; a request the server refuses comes back as
        ``Answer(text=None, error=...)``. Otherwise ProviderError: ``kind="fatal"`` (invalid
        key: stop the run), ``kind="exhausted"`` (quota spent) or ``kind="unavailable"`` (429,
        5xx or no connection after the retries); on the last two another provider may go on.
        """
        ...


@dataclass
class Created:
    """A remote job just created (or adopted: a live job with the same display name)."""

    name: str
    transport: str
    payload_bytes: int
    adopted: bool
    file_name: str | None = None


@dataclass
class Status:
    state: str
    error: str = ""
    create_time: str | None = None


class BatchBackend(Protocol):
    """A provider's batch API. ``create`` is never retried blindly: on any error the backend
    first looks for a live job with the same deterministic display name and adopts it."""

    provider: str
    model: str

    def find_live(self, display_name: str) -> str | None: ...
    def create(self, display_name: str, requests: list[Request]) -> Created: ...
    def status(self, name: str) -> Status: ...
    def results(self, name: str, requests: list[Request]) -> dict[str, Answer]: ...
    def cancel(self, name: str) -> None: ...

    # Optional: ``progress(name) -> dict[str, int] | None`` with the counts ``total``,
    # ``succeeded``, ``failed`` and ``pending`` of the job's requests (``batch-list --refresh``).

    @property
    def sync_provider(self) -> Provider:
        """Asks again, synchronously, for flags that failed inside a finished job."""
        ...


class ProviderSpec:
    """One provider: its name, its key, what it adds to fingerprints, and its factories."""

    name: str = ""
    key_variables: tuple[str, ...] = ()
    api_slots: int = 1
    runs_remotely: bool = True
    # Its answers are a language model's: the cascade's classifier may learn from them.
    answers_from_a_model: bool = True
    # What its models cost (costs/prices.py) and how its tokenizer counts our text, for the
    # estimate before a run (costs/estimate.py). A provider without a price list has no known
    # price: its estimates say so and a max_cost_usd cap refuses to start.
    prices: PriceList = NoPriceList()
    calibration: TokenCalibration = TokenCalibration()

    def model(self, settings: Settings) -> str:
        """The model name written in the outputs."""
        return settings.model

    def key_in(self, env: Mapping[str, str] | None = None) -> str | None:
        """The first of ``key_variables`` set in ``env`` (default: the environment), or None."""
        env = os.environ if env is None else env
        return next((key for name in self.key_variables if (key := env.get(name, "").strip())), None)

    def required_key(self, missing: str, env: Mapping[str, str] | None = None) -> str:
        """The key (``key_in``), or ProviderError ``missing`` (what to export) when none is set."""
        key = self.key_in(env)
        if key is None:
            raise ProviderError(missing)
        return key

    def needs_key(self, settings: Settings) -> bool:
        """Whether a run needs one of ``key_variables`` set (checked when the run is planned)."""
        return bool(self.key_variables)

    def fingerprint(self, settings: Settings) -> dict[str, Any]:
        """Settings that change its answers, added to every batch fingerprint."""
        return {"temperature": settings.temperature, "thinking_budget": settings.thinking_budget}

    def document_hints(self, issue: Issue, document_text: str) -> dict[str, Any]:
        """Per-flag facts drawn from the whole document when the run is planned (default: none)."""
        return {}

    def make(self, settings: Settings) -> Provider:
        raise NotImplementedError

    def make_batch_backend(self, settings: Settings) -> BatchBackend:
        raise ProviderError(f"provider {self.name} has no batch mode; use --config mode=sync")
