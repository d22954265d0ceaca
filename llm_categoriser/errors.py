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
    """The provider cannot go on.

    ``kind`` says what the run does next: ``"fatal"`` stops it (an invalid key, a request the
    provider refuses); ``"exhausted"`` means this provider is spent for now (daily quota, no
    credit), so another provider may take over; ``"unavailable"`` means it kept failing with
    429, 5xx or no connection until its retries ran out, so another provider may take over,
    and without one the batch's flags are recorded as failed (``fallback.py``).
    """

    def __init__(self, message: str, kind: str = "fatal") -> None:
        super().__init__(message)
        self.kind = kind
