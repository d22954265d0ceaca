"""Records of answers and results: one flag's answer, a batch's, a job's, the cascade's."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from ..costs.usage import Spend, TokenUsage
from .base import Record
from .planning import PlannedBatch

FlagStatus = Literal["ok", "repaired", "failed", "missing", "over_budget"]


class FlagResult(Record):
    """The validated answer for one flag, or why there is none."""

    status: FlagStatus
    error_category: str = ""
    confidence_score: int | None = None
    reasoning: str = ""
    error: str = ""
    attempts: int = 0
    notes: list[str] = Field(default_factory=list)


class BatchResult(Record):
    """The answers for one batch; also the cached answer (``cache/<xx>/<fingerprint>.json``).

    ``requests``, the token counts and ``cost_usd`` are what was sent to get these answers, as
    the provider reported it (``cost_usd`` None: no price known). A result answered from the
    cache is ``reused``: it counts no request, no token and no cost.
    """

    batch_id: str
    fingerprint: str
    provider: str
    model: str
    items: dict[str, FlagResult]
    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float | None = 0.0
    reused: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)

    def spend(self) -> Spend:
        if self.reused:
            return Spend(requests_reused=1)
        return Spend(
            requests_sent=self.requests,
            usage=TokenUsage(
                input_tokens=self.input_tokens,
                cached_tokens=self.cached_tokens,
                output_tokens=self.output_tokens,
                thinking_tokens=self.thinking_tokens,
            ),
            cost_usd=self.cost_usd,
            unpriced_requests=self.requests if self.cost_usd is None else 0,
        )

    def as_reused(self) -> BatchResult:
        """This answer taken from the cache: nothing sent, nothing spent."""
        return self.model_copy(
            update={
                "requests": 0,
                "input_tokens": 0,
                "cached_tokens": 0,
                "output_tokens": 0,
                "thinking_tokens": 0,
                "cost_usd": 0.0,
                "reused": True,
            }
        )


class ResultSet(Record):
    """What merge reads from a part result or a remote job's results: the batches."""

    model_config = ConfigDict(extra="ignore")
    fix: ClassVar[str] = "delete it (or the data/results and data/jobs folders) and run again"
    batches: list[BatchResult]


class JobResult(ResultSet):
    """``results/<job>.json``: one sync categorise job's answers."""

    model_config = ConfigDict(extra="forbid")
    job: str


class CascadeAnswer(Record):
    key: str
    category: str
    probability: float
    audit: bool = Field(False, description="also sent to the provider (cascade_audit)")


class CascadeSpec(Record):
    """``plan/<subject>/<document>/cascade.json``: the flags the cascade answers, and its model."""

    fix: ClassVar[str] = PlannedBatch.fix
    model: str
    trained_on: int
    answers: list[CascadeAnswer]


class CascadeResult(ResultSet):
    """``results/<subject>/<document>/cascade.json``: the cascade's answers for one document."""

    model_config = ConfigDict(extra="forbid")
