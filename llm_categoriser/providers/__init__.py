"""Providers: one interface to reach a model (DESIGN §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Answer, Provider, Request

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Answer", "Provider", "Request", "make_provider"]


def make_provider(settings: Settings) -> Provider:
    """Build the configured provider; heavy SDK imports happen only for ``gemini``."""
    if settings.provider == "offline":
        from .offline import OfflineProvider

        return OfflineProvider()
    from .gemini import GeminiProvider

    return GeminiProvider.from_settings(settings)
