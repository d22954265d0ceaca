"""Token counts of one request as the provider reports them, and their sums."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenUsage(BaseModel):
    """Tokens of one or more requests.

    ``input_tokens`` counts the whole prompt, including the ``cached_tokens`` the provider
    read from its cache (billed at the cached rate). ``output_tokens`` is the answer without
    the model's thinking; ``thinking_tokens`` are billed at the output rate.
    """

    model_config = ConfigDict(extra="forbid")

    input_tokens: int = Field(default=0, ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    thinking_tokens: int = Field(default=0, ge=0)

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            thinking_tokens=self.thinking_tokens + other.thinking_tokens,
        )

    @property
    def billed_output_tokens(self) -> int:
        return self.output_tokens + self.thinking_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.thinking_tokens


class Spend(BaseModel):
    """Requests sent and reused, their tokens and their cost (None: some request had no known price).

    A request answered from the answer cache is *reused*: nothing was sent, it costs nothing and
    its tokens are not counted.
    """

    model_config = ConfigDict(extra="forbid")

    requests_sent: int = 0
    requests_reused: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float | None = 0.0
    unpriced_requests: int = 0

    def __add__(self, other: Spend) -> Spend:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Spend(
            requests_sent=self.requests_sent + other.requests_sent,
            requests_reused=self.requests_reused + other.requests_reused,
            usage=self.usage + other.usage,
            cost_usd=cost,
            unpriced_requests=self.unpriced_requests + other.unpriced_requests,
        )

    def describe(self) -> str:
        """'3 request(s) sent, 31 answered from the cache; 5,210 input + 1,020 output tokens; $0.0041'."""
        from .prices import format_usd

        usage = self.usage
        tokens = f"{usage.input_tokens:,} input"
        if usage.cached_tokens:
            tokens += f" ({usage.cached_tokens:,} cached)"
        tokens += f" + {usage.output_tokens:,} output"
        if usage.thinking_tokens:
            tokens += f" + {usage.thinking_tokens:,} thinking"
        cost = format_usd(self.cost_usd)
        if self.cost_usd is not None and self.unpriced_requests:
            cost += f" (+ {self.unpriced_requests} request(s) with no known price)"
        return (
            f"{self.requests_sent} request(s) sent, {self.requests_reused} answered from the cache; "
            f"{tokens} tokens; {cost}"
        )


class RunSpend(Spend):
    """What one run spent (the ledger), with its cap and the estimate it started from."""

    run_id: str = ""
    started_at: str = ""
    cap_usd: float | None = None
    estimate: str = ""
