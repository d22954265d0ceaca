"""Errors that end a run with a message a user can act on (no traceback needed)."""

from __future__ import annotations


class CategoriserError(Exception):
    """Base class: the message names the file, the row and the fix."""


class ConfigError(CategoriserError):
    pass


class ReportError(CategoriserError):
    pass


class UnsafePathError(CategoriserError):
    pass


class ProviderError(CategoriserError):
    """The provider cannot go on (invalid key, daily quota spent, ...)."""
