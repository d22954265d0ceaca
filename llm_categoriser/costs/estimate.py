"""The offline estimate of what a plan will send: requests, tokens and cost, before any request.

Method (no tokenizer, no network):

* **Requests**: one per planned batch whose answer is not already in the answer cache; the
  batches the cache answers are counted apart and cost nothing. Follow-up requests for
  missing or invalid answers are not foreseen (they are rare and small: a reduced prompt).
* **Input tokens**: the exact prompt of each request (system part plus the rendered user
  part, as the provider receives it) in characters, divided by the provider's calibrated
  characters per token (``TokenCalibration``).
* **Output tokens**: ``ANSWER_CHARS_PER_FLAG`` characters of JSON answer per flag, plus the
  array's brackets, divided by the same ratio. The figure is the mean length of one answer
  object written out from the reference labels of Gemini 2.5 Flash (docs/BENCHMARKS.md).
* **Thinking tokens**: the thinking budget per request when one is set (an upper bound),
  none when thinking is off; a dynamic budget is not estimated and the estimate says so.
* **Cost**: each request priced on its own with the provider's price list (``prices.py``),
  at the batch rate in batch mode.

How far the estimate lands from the usage a provider reports is measured in
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from .prices import Pricing, format_usd
from .usage import TokenUsage

ANSWER_CHARS_PER_FLAG = 193
ANSWER_ARRAY_CHARS = 4


class TokenCalibration(BaseModel):
    """How a provider's tokenizer counts our text, as characters per token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chars_per_token: float = Field(default=4.0, gt=0)
    source: str = ""

    def tokens(self, chars: int) -> int:
        return math.ceil(chars / self.chars_per_token) if chars > 0 else 0

    def answer_tokens(self, flags: int) -> int:
        if flags <= 0:
            return 0
        return self.tokens(flags * ANSWER_CHARS_PER_FLAG + ANSWER_ARRAY_CHARS)


@dataclass(frozen=True)
class PlannedRequest:
    """The first request for one planned batch: its fingerprint, prompt size and flags."""

    fingerprint: str
    prompt_chars: int
    flags: int


class CascadeSavings(BaseModel):
    """What the cascade's local answers save: a plain run's estimate minus this run's."""

    model_config = ConfigDict(extra="forbid")

    flags_answered_locally: int
    batches_saved: int
    requests_saved: int
    input_tokens_saved: int
    output_tokens_saved: int
    cost_usd_saved: Decimal | None
    plain_requests: int
    plain_cost_usd: Decimal | None

    @classmethod
    def between(
        cls, plain: Estimate, cascade: Estimate, *, flags_answered_locally: int, plain_batches: int
    ) -> CascadeSavings:
        both = plain.cost_usd is not None and cascade.cost_usd is not None
        return cls(
            flags_answered_locally=flags_answered_locally,
            batches_saved=plain_batches - cascade.batches,
            requests_saved=plain.requests_to_send - cascade.requests_to_send,
            input_tokens_saved=plain.usage.input_tokens - cascade.usage.input_tokens,
            output_tokens_saved=plain.usage.output_tokens - cascade.usage.output_tokens,
            cost_usd_saved=plain.cost_usd - cascade.cost_usd if both else None,  # type: ignore[operator]
            plain_requests=plain.requests_to_send,
            plain_cost_usd=plain.cost_usd,
        )

    def describe(self) -> str:
        return (
            f"Cascade: {self.flags_answered_locally} flag(s) answered locally, saving "
            f"{self.requests_saved} request(s) ({self.batches_saved} batch(es)), "
            f"~{self.input_tokens_saved:,} input + ~{self.output_tokens_saved:,} output tokens and "
            f"{format_usd(self.cost_usd_saved)} against a run without it "
            f"({self.plain_requests} request(s), {format_usd(self.plain_cost_usd)})"
        )


class Estimate(BaseModel):
    """What a run will send and what it will cost, before anything is sent."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str
    mode: str
    batches: int = 0
    requests_to_send: int = 0
    requests_cached: int = 0
    flags_to_send: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: Decimal | None = None
    price_source: str = ""
    notes: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        """One line for the plan, the ``estimate`` verb and the logs."""
        thinking = f" + ~{self.usage.thinking_tokens:,} thinking" if self.usage.thinking_tokens else ""
        line = (
            f"Estimate: {self.requests_to_send} request(s) to send, {self.requests_cached} answered "
            f"from the cache; ~{self.usage.input_tokens:,} input + ~{self.usage.output_tokens:,} "
            f"output{thinking} tokens; {format_usd(self.cost_usd)} for {self.provider} {self.model} "
            f"({self.mode} mode)"
        )
        if self.price_source and self.cost_usd is not None:
            line += f", prices: {self.price_source}"
        if self.notes:
            line += "; " + "; ".join(self.notes)
        return line


def thinking_per_request(thinking_budget: int | None) -> int | None:
    """Thinking tokens to expect per request: the budget (a ceiling), 0, or None if dynamic."""
    if thinking_budget is None or thinking_budget < 0:
        return None
    return thinking_budget


def estimate_requests(
    requests: Iterable[PlannedRequest],
    *,
    answered: Callable[[str], bool],
    calibration: TokenCalibration,
    pricing: Pricing,
    provider: str,
    mode: str,
    thinking_budget: int | None = 0,
) -> Estimate:
    """Estimate ``requests``; ``answered(fingerprint)`` says whether the cache holds the answer.

    Every start of the workflow runs this over the whole plan, so the loop adds plain integers;
    the cost is linear in the tokens below a price tier, so those requests are priced once,
    together, and only a request at or above a tier on its own.
    """
    thinking = thinking_per_request(thinking_budget) or 0
    tier = pricing.rates.linear_below if pricing.rates is not None else None
    batches = cached = sent = flags = input_tokens = output_tokens = 0
    large: list[TokenUsage] = []
    for request in requests:
        batches += 1
        if answered(request.fingerprint):
            cached += 1
            continue
        sent += 1
        flags += request.flags
        tokens_in = calibration.tokens(request.prompt_chars)
        tokens_out = calibration.answer_tokens(request.flags)
        input_tokens += tokens_in
        output_tokens += tokens_out
        if tier is not None and tokens_in >= tier:
            large.append(
                TokenUsage(input_tokens=tokens_in, output_tokens=tokens_out, thinking_tokens=thinking)
            )
    usage = TokenUsage(
        input_tokens=input_tokens, output_tokens=output_tokens, thinking_tokens=thinking * sent
    )
    cost: Decimal | None = None
    if pricing.rates is not None:
        small = usage
        for request_usage in large:
            small = TokenUsage(
                input_tokens=small.input_tokens - request_usage.input_tokens,
                output_tokens=small.output_tokens - request_usage.output_tokens,
                thinking_tokens=small.thinking_tokens - request_usage.thinking_tokens,
            )
        cost = pricing.rates.cost(small) + sum((pricing.cost(u) or Decimal(0) for u in large), Decimal(0))
    notes = [pricing.note] if pricing.note else []
    if thinking_per_request(thinking_budget) is None and sent:
        notes.append("thinking tokens not estimated (dynamic thinking budget)")
    return Estimate(
        provider=provider,
        model=pricing.model,
        mode=mode,
        batches=batches,
        requests_to_send=sent,
        requests_cached=cached,
        flags_to_send=flags,
        usage=usage,
        cost_usd=cost,
        price_source=pricing.source,
        notes=notes,
    )


def suggested_cap(cost: Decimal) -> str:
    """A round cap a little above ``cost``, as typed on the command line ('0.06', '20')."""
    target = float(cost) * 1.25
    if target <= 0:
        return "0.01"
    step = 10 ** math.floor(math.log10(target))
    return f"{Decimal(str(round(math.ceil(target / step) * step, 10))).normalize():f}"


def cap_problem(estimate: Estimate, cap: Decimal | None, outcome: str = "nothing was sent") -> str | None:
    """Why a run with ``estimate`` must not start under ``cap`` (None: it may start)."""
    if cap is None or estimate.requests_to_send == 0:
        return None
    if estimate.cost_usd is None:
        return (
            f"max_cost_usd is {format_usd(cap)} but there is no price known for {estimate.provider} "
            f"model {estimate.model}, so the cap cannot be kept: {outcome}. Choose a model "
            f"with a known price, or remove the cap (--config max_cost_usd=)."
        )
    if estimate.cost_usd <= cap:
        return None
    return (
        f"The estimated cost of this run, {format_usd(estimate.cost_usd)} "
        f"({estimate.requests_to_send} request(s) to {estimate.provider} {estimate.model}, "
        f"{estimate.mode} mode), is above max_cost_usd={format_usd(cap)}: {outcome}. "
        f"To run it, raise the cap, e.g. --config max_cost_usd={suggested_cap(estimate.cost_usd)}"
        f" (or set max_cost_usd in config.yaml), or narrow the run with subjects/documents."
    )
