"""Providers: one folder per provider behind one interface, and the registry (docs/DESIGN.md §6).

``PROVIDERS`` maps a provider's name (the ``provider`` setting) to its ``ProviderSpec``;
nothing outside this package looks at a provider's name. Importing the registry imports no
SDK: a provider's client is built only when a job needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import Answer, BatchBackend, Provider, ProviderError, ProviderSpec, Request
from .gemini import SPEC as GEMINI
from .mistral import SPEC as MISTRAL
from .offline import SPEC as OFFLINE
from .openai import SPEC as OPENAI

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "PROVIDERS",
    "Answer",
    "BatchBackend",
    "Provider",
    "ProviderError",
    "ProviderSpec",
    "Request",
    "answers_are_learnable",
    "check_ready",
    "get_provider",
    "make_backend",
    "make_provider",
]

PROVIDERS: dict[str, ProviderSpec] = {spec.name: spec for spec in (OFFLINE, GEMINI, OPENAI, MISTRAL)}


def get_provider(name: str) -> ProviderSpec:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}. Allowed: {', '.join(PROVIDERS)}.") from None


def answers_are_learnable(provider: str) -> bool:
    """Whether answers recorded under this provider name are a model's (the cascade learns
    from these only: never from the offline rules, never from its own answers)."""
    spec = PROVIDERS.get(provider)
    return spec is not None and spec.answers_from_a_model


def make_provider(settings: Settings) -> Provider:
    """The configured provider, ready for synchronous calls."""
    return get_provider(settings.provider).make(settings)


def make_backend(settings: Settings) -> BatchBackend:
    """The configured provider's batch API."""
    return get_provider(settings.provider).make_batch_backend(settings)


def check_ready(settings: Settings) -> None:
    """ProviderError while the run is planned, before any job starts, when a provider of the
    chain (``provider``, then ``fallback``) cannot run at all: it needs an API key and none of
    its key variables is set."""
    for name in dict.fromkeys([settings.provider, *settings.fallback]):
        spec = get_provider(name)
        if not spec.needs_key(settings) or spec.key_in():
            continue
        first, *others = spec.key_variables
        also = f" (or {', '.join(others)})" if others else ""
        raise ProviderError(
            f"provider {spec.name} needs an API key: export {first}=...{also} in the shell that runs "
            f"snakemake, or use the offline provider (--config provider=offline)."
        )
