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
from .offline import SPEC as OFFLINE

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
    "get_provider",
    "make_backend",
    "make_provider",
]

PROVIDERS: dict[str, ProviderSpec] = {spec.name: spec for spec in (OFFLINE, GEMINI)}


def get_provider(name: str) -> ProviderSpec:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}. Allowed: {', '.join(PROVIDERS)}.") from None


def make_provider(settings: Settings) -> Provider:
    """The configured provider, ready for synchronous calls."""
    return get_provider(settings.provider).make(settings)


def make_backend(settings: Settings) -> BatchBackend:
    """The configured provider's batch API."""
    return get_provider(settings.provider).make_batch_backend(settings)
