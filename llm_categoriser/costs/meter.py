"""What a job consults around each request: may it send, and what did the answer cost.

``can_send`` is checked before a batch is started: once the run's recorded spend (the ledger)
has reached ``max_cost_usd``, no new batch is sent. Batches already started still finish
(their follow-up requests included) and are recorded, so a sync run can end above the cap by
at most the batches that were in flight when it was reached. A remote job is paid when its
answers are fetched, so ``reserve`` admits it only if the run's spend plus the estimates of
the jobs already submitted plus its own stay within the cap.
``charge`` prices the usage the provider reported for one request (the batch rate for an
answer that came from a remote job) and adds it to the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import Decimal

from .ledger import SpendLedger
from .prices import Pricing, format_usd
from .usage import TokenUsage

OVER_BUDGET = "over_budget"


@dataclass
class SpendMeter:
    sync: Pricing
    batch: Pricing | None = None
    ledger: SpendLedger | None = None
    cap: Decimal | None = None
    provider: str = ""  # written in the results of batches not sent
    model: str = ""
    # the pricing of another provider and model of the chain (provider, model, batch), None
    # when that provider is not known: the answer is then priced with ``sync``/``batch``
    price_of: Callable[[str, str, bool], Pricing | None] | None = None

    def can_send(self) -> bool:
        """Whether the run may start another request: its spend has not reached the cap."""
        if self.cap is None or self.ledger is None:
            return True
        return self.ledger.spent() < self.cap

    def reserve(self, expected: Decimal | None) -> bool:
        """Whether a remote job of estimated cost ``expected`` may be created; if so its cost is
        reserved until its answers are fetched (``release``)."""
        if self.ledger is None or (self.cap is None and expected is None):
            return True
        if not self.can_send():
            return False
        return self.ledger.try_commit(expected or Decimal(0), self.cap)

    def release(self, expected: Decimal | None) -> None:
        if self.ledger is not None and expected:
            self.ledger.release(expected)

    def pricing(self, batch: bool) -> Pricing:
        return self.batch if batch and self.batch is not None else self.sync

    def charge(
        self,
        usage: TokenUsage,
        batch: bool = False,
        requests: int = 1,
        provider: str | None = None,
        model: str | None = None,
    ) -> Decimal | None:
        """Price one request's reported usage at the rates of the ``provider`` and ``model`` that
        answered it (default: the run's), record it, return its cost (None: no price known)."""
        cost = self.price(usage, batch, provider, model)
        if self.ledger is not None:
            self.record(cost, usage, requests)
        return cost

    def record(self, cost: Decimal | None, usage: TokenUsage, requests: int) -> None:
        """Add priced requests to the ledger (``cost`` None: no price known)."""
        assert self.ledger is not None
        self.ledger.add(cost, usage, requests)

    def price(
        self, usage: TokenUsage, batch: bool = False, provider: str | None = None, model: str | None = None
    ) -> Decimal | None:
        """The cost of one request's usage (None: no price known), not recorded."""
        pricing = None
        if provider and model and (provider, model) != (self.provider, self.model) and self.price_of:
            pricing = self.price_of(provider, model, batch)
        return (pricing or self.pricing(batch)).cost(usage)

    def flush(self) -> None:
        """Write what this process's jobs added and the ledger keeps in memory (a job ends)."""
        if self.ledger is not None:
            self.ledger.flush()

    def settled(self) -> SettledMeter:
        """This meter for the fetch of one remote job (see ``SettledMeter``)."""
        return SettledMeter(**{f.name: getattr(self, f.name) for f in fields(SpendMeter)})

    def tally(self) -> TalliedMeter:
        """This meter for one job that sends its requests one after another (see ``TalliedMeter``)."""
        return TalliedMeter(**{f.name: getattr(self, f.name) for f in fields(SpendMeter)})

    def reused(self, count: int) -> None:
        """``count`` batches were answered from the answer cache (nothing sent, nothing spent)."""
        if self.ledger is not None:
            self.ledger.add_reused(count)

    def stopped(self, *outputs: str) -> None:
        """``outputs`` hold (or depend on) flags left unanswered at the cap: they are redone."""
        if self.ledger is not None:
            self.ledger.mark_stopped(*outputs)

    def stop_reason(self) -> str:
        """The error written for a flag that was not sent because of the cap."""
        spent = self.ledger.spent() if self.ledger is not None else Decimal(0)
        return (
            f"not sent: this run reached max_cost_usd={format_usd(self.cap)} (spent {format_usd(spent)}); "
            f"rerun with a higher cap (--config max_cost_usd=...) to continue, answers already "
            f"received are kept"
        )


@dataclass
class TalliedMeter(SpendMeter):
    """A job's meter that adds the requests costing nothing to the ledger once, at ``flush``.

    Each addition to the ledger takes its flock and rewrites it; a provider that runs locally
    (the offline rules) answers thousands of requests a minute for nothing, so its job counts
    them and records the sum when it ends. A request with a cost, or without a known price, is
    recorded at once, as by ``SpendMeter``: the cap only ever sees what costs money, and
    nothing costing money waits. Only for one thread: a job whose requests are concurrent
    keeps the plain meter.
    """

    _usage: TokenUsage = field(default_factory=TokenUsage)
    _requests: int = 0

    def record(self, cost: Decimal | None, usage: TokenUsage, requests: int) -> None:
        if cost is None or cost:
            super().record(cost, usage, requests)
        else:
            self._usage = self._usage + usage
            self._requests += requests

    def flush(self) -> None:
        """Record the requests counted so far (costing nothing) in the ledger."""
        if self._requests and self.ledger is not None:
            self.ledger.add(Decimal(0), self._usage, self._requests)
        self._usage, self._requests = TokenUsage(), 0
        super().flush()


@dataclass
class SettledMeter(SpendMeter):
    """The meter of a remote job's fetch: what its answers cost is added to the ledger once, by
    ``settle``, in the same update that releases the job's reservation.

    The reservation made when the job was submitted stands for these answers until then, so
    the cap never sees less than the job's estimate; without it, every answer of the job took
    the ledger's flock and rewrote it. The follow-up requests a fetch sends for flags left
    unanswered are counted with them (a batch already started always finishes, docs/DESIGN.md
    §31). Only for one thread, as ``TalliedMeter``.
    """

    _cost: Decimal = Decimal(0)
    _usage: TokenUsage = field(default_factory=TokenUsage)
    _requests: int = 0
    _unpriced_usage: TokenUsage = field(default_factory=TokenUsage)
    _unpriced: int = 0

    def record(self, cost: Decimal | None, usage: TokenUsage, requests: int) -> None:
        if cost is None:
            self._unpriced_usage = self._unpriced_usage + usage
            self._unpriced += requests
        else:
            self._cost += cost
            self._usage = self._usage + usage
            self._requests += requests

    def settle(self, reserved: Decimal | None = None) -> None:
        """Record what was charged so far and release ``reserved`` (the job's estimate)."""
        if self.ledger is not None and (self._requests or self._unpriced or reserved):
            self.ledger.settle(
                [(self._cost, self._usage, self._requests), (None, self._unpriced_usage, self._unpriced)],
                reserved or Decimal(0),
            )
        self._cost, self._usage, self._requests = Decimal(0), TokenUsage(), 0
        self._unpriced_usage, self._unpriced = TokenUsage(), 0
