"""The Gemini emulator that can kill the run itself, right after it served a seeded n-th call and
before the answer goes out: the remote side did the work, the pipeline never learns it."""

from __future__ import annotations

from typing import Any

from support.crash_harness.checks import kill_group
from support.emulators.gemini import GeminiEmulator


class KillingEmulator(GeminiEmulator):
    """The emulator, able to SIGKILL the running Snakemake process group at an event."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pgid: int | None = None
        self._trigger: tuple[str, int] | None = None
        self._seen = 0
        self.fired_event = False

    def arm(self, event: str | None) -> None:
        """Kill at ``event`` ("<endpoint>#<n>", counted from now on, across runs); None: never."""
        with self._lock:
            self.fired_event, self._seen, self._trigger = False, 0, None
            if event:
                endpoint, _, nth = event.rpartition("#")
                self._trigger = (endpoint, int(nth))

    def attach(self, pgid: int | None) -> None:
        """The process group to kill (the run in progress), or None between runs."""
        with self._lock:
            self.pgid = pgid

    def _dispatch(self, method, path, query, headers, body, route):  # type: ignore[no-untyped-def]
        response = super()._dispatch(method, path, query, headers, body, route)
        with self._lock:
            trigger, pgid = self._trigger, self.pgid
            hit = trigger is not None and route.endpoint == trigger[0] and response.status == 200
            if hit:
                self._seen += 1
                hit = self._seen == trigger[1] and pgid is not None and not self.fired_event
                self.fired_event = self.fired_event or hit
        if hit and pgid is not None:
            kill_group(pgid)  # before the answer goes out: the job exists, the client never knows
        return response
