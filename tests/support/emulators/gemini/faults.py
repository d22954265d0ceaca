"""The fault side of the Gemini emulator: the queue of injected faults, the API-key check and
the error bodies of the HTTP faults (quota, internal, unavailable, any status)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from support.emulators.gemini.generate import quota_error
from support.emulators.gemini.wire import (
    INTERNAL_MESSAGE,
    INVALID_KEY_MESSAGE,
    MISSING_KEY_MESSAGE,
    UNAVAILABLE_MESSAGE,
    ApiError,
    Endpoint,
    Fault,
    QueuedFault,
)


class FaultsMixin:
    """Fault injection and key checks of :class:`~support.emulators.gemini.GeminiEmulator`;
    the state they use is set up in its ``__init__``."""

    def inject(
        self,
        fault: str,
        *,
        times: int | None = 1,
        endpoint: str | Collection[str] | None = None,
        path_contains: str | None = None,
        **params: Any,
    ) -> None:
        """Queue a fault for the next ``times`` matching calls (None = forever)."""
        if fault not in Fault.HTTP and fault not in Fault.ANSWER:
            raise ValueError(f"unknown fault {fault!r}")
        if fault == Fault.HTTP_ERROR and "status" not in params:
            raise ValueError("Fault.HTTP_ERROR needs status=<int>")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        endpoints: frozenset[str] | None
        if endpoint is None:
            endpoints = None
        elif isinstance(endpoint, str):
            endpoints = frozenset({endpoint})
        else:
            endpoints = frozenset(endpoint)
        if fault in Fault.ANSWER:
            endpoints = frozenset({Endpoint.GENERATE_CONTENT})
        with self._lock:
            self._faults.append(QueuedFault(fault, times, endpoints, path_contains, params))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[str]:
        with self._lock:
            return [f.fault for f in self._faults]

    def _check_api_key(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        key = headers.get("x-goog-api-key") or query.get("key")
        if not key:
            raise ApiError(403, MISSING_KEY_MESSAGE, "PERMISSION_DENIED")
        if key in self.invalid_api_keys or (self.api_keys is not None and key not in self.api_keys):
            raise ApiError(
                400,
                INVALID_KEY_MESSAGE,
                "INVALID_ARGUMENT",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": INVALID_KEY_MESSAGE,
                    },
                ],
            )

    def _take_fault(self, endpoint: str, path: str, *, http: bool) -> QueuedFault | None:
        kinds = Fault.HTTP if http else Fault.ANSWER
        with self._lock:
            for queued in self._faults:
                if queued.fault in kinds and queued.matches(endpoint, path):
                    if queued.remaining is not None:
                        queued.remaining -= 1
                        if queued.remaining <= 0:
                            self._faults.remove(queued)
                    self._faults_served[queued.fault] += 1
                    return queued
        return None

    def _raise_http_fault(self, queued: QueuedFault, model: str) -> None:
        params = queued.params
        if queued.fault in (Fault.RATE_LIMIT_MINUTE, Fault.RATE_LIMIT_DAY):
            raise quota_error(queued.fault == Fault.RATE_LIMIT_DAY, model, **params)
        if queued.fault == Fault.INTERNAL:
            raise ApiError(500, params.get("message", INTERNAL_MESSAGE), "INTERNAL")
        if queued.fault == Fault.UNAVAILABLE:
            raise ApiError(503, params.get("message", UNAVAILABLE_MESSAGE), "UNAVAILABLE")
        status = int(params["status"])
        raise ApiError(
            status,
            params.get("message", f"Injected HTTP {status} error."),
            params.get("grpc_status"),
            details=params.get("details"),
        )
