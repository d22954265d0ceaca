"""Shared machinery of the loopback emulators of chat-completion APIs (OpenAI, Mistral).

Both vendors speak the same shape of HTTP API: ``POST /v1/chat/completions``, a Files API
(multipart upload, ``GET /v1/files/{id}/content``) and a Batch API over uploaded JSONL files
whose results come back as output and error files keyed by ``custom_id``. This package holds
what is common: the routes, API-key checks, injectable faults, deterministic answers (the same
verdicts as the Gemini emulator, :func:`support.emulators.gemini.default_answer`), a per-day
quota that runs out after N answers, the Files API, the batch job life cycle and counters; the
server on 127.0.0.1 and the request recording (to grep for leaked secrets) are
:mod:`support.emulators.loopback`'s. The vendor modules (``support.emulators.openai``,
``support.emulators.mistral``) add only their quirks: paths, wire
shapes, status names and error bodies.

Only the Python standard library is used. Everything a test may change is a plain attribute
or a method; every public method is thread-safe.

Batch job life cycle (``batch_mode``):

* ``"manual"`` (default): jobs stay queued until the test calls ``emu.advance(job_id)``,
  ``emu.finish(job_id)`` or ``emu.complete_all()``.
* ``"auto"``: a job finishes on the ``complete_after_polls``-th status read (running before).

How a job ends comes from a :class:`BatchPlan` (``emu.plan_next_batch(...)`` for the next
job created, ``emu.set_default_batch_plan(...)`` for all): ``final_state`` (``completed``,
``failed``, ``expired``, ``cancelled``), ``item_errors`` (items answered with an error line
instead of an output line), ``answer_faults`` (per-item corrupted answers), ``expire_after``
(an expired job answers only its first N items; the rest get the vendor's expiry error),
``shuffle`` (output lines in another order). Items are addressed by ``custom_id`` (str) or
0-based position (int).
"""

from support.emulators.chat_api.emulator import ChatApiEmulator, serve_standalone
from support.emulators.chat_api.wire import (
    CATEGORIES,
    ApiError,
    BatchPlan,
    Fault,
    Item,
    Job,
    Request,
    State,
    StoredFile,
    parse_multipart,
)
from support.emulators.loopback import RecordedRequest, Response

__all__ = [
    "CATEGORIES",
    "ApiError",
    "BatchPlan",
    "ChatApiEmulator",
    "Fault",
    "Item",
    "Job",
    "RecordedRequest",
    "Request",
    "Response",
    "State",
    "StoredFile",
    "parse_multipart",
    "serve_standalone",
]
