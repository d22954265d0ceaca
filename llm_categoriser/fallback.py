"""The provider chain (docs/DESIGN.md §6): ``provider`` (``LLM_PRIMARY``), then each of ``fallback``
(``LLM_FALLBACK``), in order.

A provider that is spent (``ProviderError`` of kind ``exhausted``: its quota; or
``unavailable``: 429, 5xx or an unreachable server after its retries) hands the batch to the
next provider of the chain and is not asked again by this process (Snakemake runs the jobs as
threads of one process); an invalid key (kind ``fatal``) stops the run with its message. The
last provider of the chain is always asked: when its quota is spent the job ends with its
message; when it is unavailable the batch's flags are recorded as failed (and asked again by
a later run). In batch mode a remote job belongs to one provider: a job that cannot be created
goes to the next one.

Answers are cached per provider and model: each link sees a batch with its own request
settings and therefore its own fingerprint, so a fallback's answer never passes for the
primary's, and a rerun reuses whichever complete answer exists, in chain order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .answers import load_answer
from .layout import Layout
from .providers import get_provider
from .providers.base import BatchBackend, Provider, ProviderError
from .records import BatchResult, PlannedBatch
from .settings import Settings

log = logging.getLogger(__name__)

SPENT = ("exhausted", "unavailable")  # ProviderError kinds that hand over to the next provider
_spent_lock = threading.Lock()
_spent: dict[str, str] = {}  # provider -> why it is spent, for this process


def mark_spent(name: str, why: str) -> None:
    with _spent_lock:
        _spent[name] = why


def spent(name: str) -> str | None:
    with _spent_lock:
        return _spent.get(name)


def forget_spent() -> None:
    with _spent_lock:
        _spent.clear()


def _same(batch: PlannedBatch) -> PlannedBatch:
    return batch


@dataclass
class Link:
    """One provider of the chain: how to make it and how it sees a planned batch."""

    name: str
    make: Callable[[], Provider]
    rebatch: Callable[[PlannedBatch], PlannedBatch] = _same
    _made: Provider | None = field(default=None, repr=False)

    def provider(self) -> Provider:
        if self._made is None:
            self._made = self.make()
        return self._made


def settings_for(settings: Settings, provider: str) -> Settings:
    """The run's settings as seen from ``provider`` (its model, its fingerprint)."""
    return settings if provider == settings.provider else settings.model_copy(update={"provider": provider})


def as_seen_by(settings: Settings) -> Callable[[PlannedBatch], PlannedBatch]:
    """A planned batch re-fingerprinted with the request settings of ``settings.provider``."""
    from .plan import request_settings

    wanted = request_settings(settings)

    def rebatch(batch: PlannedBatch) -> PlannedBatch:
        if batch.settings == wanted:
            return batch
        seen = batch.model_copy(update={"settings": wanted})
        seen.fingerprint = seen.request_fingerprint()
        return seen

    return rebatch


def link_of(settings: Settings, provider: str) -> Link:
    seen = settings_for(settings, provider)
    spec = get_provider(provider)
    return Link(provider, lambda: spec.make(seen), _same if seen is settings else as_seen_by(seen))


def backend_of(settings: Settings, provider: str) -> BatchBackend:
    return get_provider(provider).make_batch_backend(settings_for(settings, provider))


def names(settings: Settings) -> list[str]:
    return list(dict.fromkeys([settings.provider, *settings.fallback]))


class ProviderChain:
    """Answers batches with the first provider of the chain that is not spent."""

    def __init__(self, links: list[Link], logger: logging.Logger | None = None) -> None:
        if not links:
            raise ValueError("a provider chain needs at least one provider")
        self.links = links
        self.logger = logger or log

    @classmethod
    def of(cls, settings: Settings, logger: logging.Logger | None = None) -> ProviderChain:
        return cls([link_of(settings, name) for name in names(settings)], logger)

    @classmethod
    def single(cls, make: Callable[[], Provider], logger: logging.Logger | None = None) -> ProviderChain:
        return cls([Link("provider", make)], logger)

    def cached(self, layout: Layout, batch: PlannedBatch) -> BatchResult | None:
        """A complete saved answer from any provider of the chain, in chain order."""
        for link in self.links:
            saved = load_answer(layout, link.rebatch(batch).fingerprint, self.logger)
            if saved is not None:
                return saved
        return None

    def answer(
        self, batch: PlannedBatch, ask: Callable[[PlannedBatch, Provider, bool], BatchResult]
    ) -> BatchResult:
        """``ask(batch as the provider sees it, provider, another provider follows)`` with each
        provider in turn, until one answers."""
        last: ProviderError | None = None
        for index, link in enumerate(self.links):
            following = self.links[index + 1] if index + 1 < len(self.links) else None
            if following is not None and spent(link.name):
                continue
            try:
                return ask(link.rebatch(batch), link.provider(), following is not None)
            except ProviderError as exc:
                if exc.kind not in SPENT or following is None:
                    raise
                last = exc
                mark_spent(link.name, str(exc))
                self.logger.warning(
                    "%s: provider %s is spent (%s); %s takes over",
                    batch.batch_id,
                    link.name,
                    exc,
                    following.name,
                )
        raise AssertionError(f"unreachable: the last provider always answers or raises ({last})")
