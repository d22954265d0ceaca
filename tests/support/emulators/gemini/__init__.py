"""In-process HTTP emulator of the Gemini Developer API, for tests and benchmarks.

The emulator is a real HTTP server (``http.server.ThreadingHTTPServer`` on
127.0.0.1, free port by default) that speaks the REST dialect the official
``google-genai`` SDK (checked against 3.3.0) sends in *Gemini Developer API*
mode (not Vertex). It uses only the Python standard library.

Pointing the real SDK at it
---------------------------
Either pass the base URL explicitly::

    from google import genai
    from google.genai import types

    with GeminiEmulator() as emu:
        client = genai.Client(
            api_key="fake", http_options=types.HttpOptions(base_url=emu.url)
        )

or set ``GOOGLE_GEMINI_BASE_URL=<emu.url>`` before creating the client.
SDK facts this relies on (``google/genai/_base_url.py`` and
``_api_client.py``):

* ``genai.Client`` resolves its base URL as: ``http_options.base_url``, then
  ``google.genai._base_url.set_default_base_urls(...)``, then the environment
  variable ``GOOGLE_GEMINI_BASE_URL`` (``GOOGLE_VERTEX_BASE_URL`` in Vertex
  mode). It is read when the client is constructed.
* An API key is still mandatory in Gemini mode (``api_key=`` or the
  ``GOOGLE_API_KEY`` / ``GEMINI_API_KEY`` variables); it travels in the
  ``x-goog-api-key`` header. ``GOOGLE_GENAI_USE_VERTEXAI`` must not be true.
* The URL is ``<base_url>/<api_version>/<path>``. In SDK 3.3.0 the default
  Gemini ``api_version`` is ``v1`` (not ``v1beta``!); ``GOOGLE_GENAI_API_VERSION``
  or ``HttpOptions(api_version=...)`` change it. The emulator accepts any
  ``/v<N>[alpha|beta]/`` prefix, plus the ``/upload/<ver>/`` and
  ``/download/<ver>/`` forms.
* The SDK never retries by default (``retry_options`` unset), and only HTTP
  200 is success (``errors.APIError.raise_for_response``); 4xx raise
  ``google.genai.errors.ClientError`` and 5xx ``ServerError``, whose
  ``.details`` is the whole JSON error body.

Emulated endpoints (``<ver>`` = any API version)
------------------------------------------------
* ``POST /<ver>/models/{m}:generateContent`` - ``client.models.generate_content``
* ``POST /<ver>/models/{m}:batchGenerateContent`` - ``client.batches.create``
  with inline ``batch.inputConfig.requests.requests[]`` (``{"request": ...,
  "metadata": {"key": ...}}``) or ``batch.inputConfig.fileName`` (a JSONL file
  of ``{"key": ..., "request": {...}}`` lines, REST or proto field names)
* ``GET /<ver>/batches/{id}`` - ``client.batches.get``
* ``GET /<ver>/batches?pageSize=&pageToken=`` - ``client.batches.list``
  (``{"operations": [...], "nextPageToken": ...}``, oldest job first)
* ``POST /<ver>/batches/{id}:cancel`` - ``client.batches.cancel``
* ``DELETE /<ver>/batches/{id}`` - ``client.batches.delete``
* ``POST /upload/<ver>/files`` - ``client.files.upload``: resumable ``start``
  (body ``{"file": {"mime_type", "size_bytes", "display_name"}}``, snake_case
  as the SDK sends it) answered with an absolute ``X-Goog-Upload-URL``; then
  ``upload, finalize`` chunks (no API key on those) answered with
  ``X-Goog-Upload-Status: final`` and ``{"file": {...}}``
* ``GET /<ver>/files/{id}``, ``GET /<ver>/files``, ``DELETE /<ver>/files/{id}``
* ``GET /<ver>/files/{id}:download?alt=media`` (also ``/download/<ver>/...``)
  - ``client.files.download``; only ``source: GENERATED`` files (batch
  results ``files/batch-<id>``) can be downloaded, as on the real service

Batches are long-running operations on the wire: ``batches/{id}`` returns
``{"name", "metadata": {GenerateContentBatch}, "done", "response"|"error"}``.
``metadata.state`` is ``BATCH_STATE_*`` (the SDK maps it to ``JOB_STATE_*``)
and ``metadata.output`` holds ``{"inlinedResponses": {"inlinedResponses":
[...]}}`` or ``{"responsesFile": "files/batch-<id>"}``. The SDK turns that into
``BatchJob.dest.inlined_responses`` / ``BatchJob.dest.file_name``. The SDK does
not map the operation's ``error`` into ``BatchJob.error`` for the Gemini API,
so a FAILED job is only visible as ``state == JOB_STATE_FAILED`` (read
``emu.job(name)["error"]`` for the status).

Batch job life cycle (``batch_mode``)
-------------------------------------
* ``"manual"`` (default): jobs stay ``PENDING`` until the test calls
  ``emu.advance(name)``, ``emu.set_state(name, state)`` or ``emu.complete_all()``.
* ``"per_poll"``: every ``batches.get`` moves the job one step
  ``PENDING -> RUNNING -> <final state>`` before answering.
* ``"auto"``: a job finishes after ``complete_after_polls`` gets or
  ``complete_after_seconds`` seconds, whichever comes first (RUNNING in between).

The final state and per-item behaviour come from a :class:`BatchPlan`
(``emu.plan_next_batch(...)`` for the next created job, ``emu.plan_batch(name,
...)`` for an existing one, ``emu.set_default_batch_plan(...)`` for all).

Answers
-------
A prompt (the ``user`` texts of ``contents``) with a Markdown table whose header
row starts with ``| issue_id |`` and whose data rows start with ``| <int> |``
gets the text of a JSON array with one object per issue id::

    {"issue_id": 7, "error_category": "SPELLING_ERROR",
     "confidence_score": 83, "reasoning": "..."}

The category and score come from a SHA-256 of the row's text, so the same row
always gets the same verdict. The category is one of those the request offers, as
a real model keeps to them (``categories_of``): the ``error_category`` enum of its
``responseSchema`` when it has one, else those of ``CATEGORIES`` that its system
instruction names (a client without structured output, such as the earlier tool,
lists six), else all nine. Pass ``answer_fn(prompt_text) -> str`` to answer
differently. Responses carry ``finishReason: STOP``, ``usageMetadata``,
``modelVersion`` and ``responseId``.

Usage metadata is counted from the text received and sent, with a word-piece
approximation of a SentencePiece tokenizer (``count_tokens``: a word is one token
per six letters, a digit one token, a newline one, a single space nothing, a run
of one punctuation character one per four), not with Gemini's own tokenizer:
``promptTokenCount`` covers the system instruction and the contents,
``candidatesTokenCount`` the answer, and ``thoughtsTokenCount`` appears when
thinking is on (``thinkingBudget`` > 0: up to the budget; -1 or no thinking
config: dynamic), as on the real service.

Fault API
---------
``emu.inject(fault, times=1, endpoint=None, path_contains=None, **params)``
queues one-shot faults (``times=None`` = until ``emu.clear_faults()``):

* HTTP faults, answered instead of the real response:
  ``Fault.RATE_LIMIT_MINUTE`` / ``Fault.RATE_LIMIT_DAY`` (429
  ``RESOURCE_EXHAUSTED`` with ``google.rpc.Help``, ``QuotaFailure`` quota ids
  ``GenerateRequestsPerMinutePerProjectPerModel`` /
  ``GenerateRequestsPerDayPerProjectPerModel`` and ``RetryInfo``
  ``retryDelay: "2s"``; params ``retry_delay``, ``quota_id``, ``quota_value``,
  ``free_tier``), ``Fault.INTERNAL`` (500), ``Fault.UNAVAILABLE`` (503),
  ``Fault.HTTP_ERROR`` (params ``status``, ``grpc_status``, ``message``).
  ``endpoint`` (an :class:`Endpoint` name or a collection of them) restricts
  which calls consume it; by default any API call except upload chunks.
* Answer faults, applied to the next successful ``generateContent`` answer:
  ``Fault.MALFORMED_JSON``, ``Fault.TRUNCATED_JSON`` (finishReason
  ``MAX_TOKENS``), ``Fault.MISSING_IDS`` (last object dropped),
  ``Fault.UNKNOWN_IDS`` (extra object with an id not in the prompt),
  ``Fault.DUPLICATE_IDS`` (first id repeated with another category),
  ``Fault.SAFETY_BLOCK`` (finishReason ``SAFETY``, no content).

Batch faults are set with a :class:`BatchPlan`: ``final_state`` ``FAILED``
(with ``error``), ``EXPIRED`` or ``CANCELLED``; ``item_errors`` (per-item
``error`` instead of ``response``, inline and JSONL); ``answer_faults`` (the
answer faults above, per item); ``shuffle`` (responses in another order);
``drop_metadata`` (inline responses without ``metadata``, JSONL lines without
``key``). Items are addressed by their key (str) or 0-based index (int).

API keys: no key -> 403 ``PERMISSION_DENIED``; a key in ``invalid_api_keys``
(default ``{"invalid"}``) or, if ``api_keys`` is given, any key not in it ->
400 ``INVALID_ARGUMENT`` with ``ErrorInfo.reason == "API_KEY_INVALID"``.

Latency and rate limit (a realistic API): each successful ``generateContent``
answer waits ``latency`` seconds plus ``latency_per_item`` per flag row of its
prompt. With ``requests_per_minute=N``, at most N ``generateContent`` calls are
accepted per ``rate_window`` seconds (sliding, 60 by default); beyond that the
call gets the per-minute 429 ``RESOURCE_EXHAUSTED`` above, whose ``RetryInfo``
says when the oldest accepted call leaves the window. Refused calls do not
count. ``stats()["rate_limited"]`` counts them; ``answered``, ``answered_span``
(seconds from the first successful answer to the last) and ``answered_at``
(each answer's time after the first) give the throughput; ``peak_in_flight``
the most calls accepted and not yet answered at one time (since the last reset).

Counters: ``emu.stats()`` (``http_requests``, ``generate_content_calls``,
``batch_creations``, ``endpoint_counts``, ``path_counts``,
``max_inline_batch_bytes``, ``uploaded_file_sizes``, ...), ``emu.requests``
(bounded list of :class:`RecordedRequest` with headers and body) and
``emu.find_requests(needle)`` to grep them, e.g. for a leaked secret.

Standalone (benchmarks)::

    cd tests && python -m support.emulators.gemini --port 0 --latency 0.5 --auto-complete

prints the base URL as the first stdout line and serves until SIGINT/SIGTERM.
Then ``GET <url>/_emulator/stats`` returns the counters,
``POST <url>/_emulator/complete_all`` finishes jobs, ``POST
<url>/_emulator/faults`` with ``{"fault": ..., "times": ..., ...}`` injects
(``DELETE`` clears) and ``POST <url>/_emulator/reset`` / ``reset_stats``
forget state / counters. These control paths need no key and are not counted.

Sharing one emulator between tests: ``emu.reset()`` forgets jobs, files,
faults and plans and zeroes the counters (settings stay). Creating a
``genai.Client`` costs ~0.1 s (SSL context), so a module-scoped emulator and
client plus ``reset()`` per test keeps suites fast. Keep a reference to each
client: a garbage-collected ``genai.Client`` closes its HTTP connection pool
and later calls through its ``.models`` / ``.batches`` fail.
"""

from support.emulators.gemini.answers import categories_of, count_tokens, default_answer, parse_issue_rows
from support.emulators.gemini.emulator import GeminiEmulator
from support.emulators.gemini.wire import CATEGORIES, BatchPlan, Endpoint, Fault
from support.emulators.loopback import RecordedRequest

__all__ = [
    "CATEGORIES",
    "BatchPlan",
    "Endpoint",
    "Fault",
    "GeminiEmulator",
    "RecordedRequest",
    "categories_of",
    "count_tokens",
    "default_answer",
    "parse_issue_rows",
]
