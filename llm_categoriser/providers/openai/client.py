"""OpenAI synchronous calls: chat completions with structured output (a JSON schema whose
category is an enum), through the official ``openai`` SDK.

The SDK's own retries are off (``max_retries=0``): the retry loop in ``chat_completions.py``
sees every error, so a spent quota (429 ``insufficient_quota``) hands over to the next provider
at once instead of being retried, rate limits (429) and 5xx are retried honouring the server's
``retry-after-ms`` / ``retry-after``, and an invalid key (401) or unknown model (404) stops the
run with a message. The key comes from ``OPENAI_API_KEY`` only, read inside the job; a server
given by ``openai_base_url`` or ``OPENAI_BASE_URL`` may need none (a local vLLM, Ollama or
llama.cpp server), and then a placeholder is sent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from ...settings import Settings
from ..base import Answer, ProviderError, Request
from ..chat_completions import (
    Failure,
    RequestFailed,
    call_with_retries,
    chat_body,
    completion_answer,
    retry_after_seconds,
)
from . import BASE_URL_VARIABLE, KEY_VARIABLES

NO_KEY = "no-key"  # sent to a keyless local server: the SDK insists on some key


def base_url(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return settings.openai_base_url or env.get(BASE_URL_VARIABLE, "").strip() or None


def api_key(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    for name in KEY_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    if base_url(settings, env):
        return NO_KEY
    raise ProviderError(
        "provider openai needs an API key: export OPENAI_API_KEY=... in the shell that runs "
        "snakemake (never in config.yaml), or point openai_base_url (or OPENAI_BASE_URL) at an "
        "OpenAI-compatible server that needs no key."
    )


def classify(exc: BaseException, model: str = "") -> Failure:
    """What an ``openai`` SDK error means for the run (see ``chat_completions.Failure``)."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        code = str(getattr(exc, "code", "") or "")
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        message = str(detail.get("message") or exc.message)
        what = f"HTTP {status}{' ' + code if code else ''}: {message}"
        if status in (401, 403):
            # the vendor's message quotes part of the key: only the status and code are kept
            return Failure(
                "fatal",
                f"OpenAI rejected the API key (HTTP {status} {code or 'unauthorised'}). Check "
                f"OPENAI_API_KEY (create a key at platform.openai.com), export it and rerun.",
            )
        if status == 404 and (code == "model_not_found" or "model" in message.lower()):
            return Failure(
                "fatal",
                f"The server does not offer model {model!r} ({what}). Set openai_model to a model "
                f"it serves (--config openai_model=...).",
            )
        if status == 429 and code == "insufficient_quota":
            return Failure(
                "exhausted",
                f"OpenAI quota spent ({what}). Add credit or raise the project's limit, or let "
                f"LLM_FALLBACK name another provider.",
            )
        if status in (408, 409, 429) or status >= 500:
            return Failure("transient", what, retry_after_seconds(exc.response.headers))
        return Failure("request", what)
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return Failure("transient", f"server unreachable ({type(exc).__name__}: {exc})")
    raise exc


def make_client(settings: Settings, key: str) -> Any:
    import openai

    return openai.OpenAI(
        api_key=key, base_url=base_url(settings), max_retries=0, timeout=settings.request_timeout
    )


class OpenAIProvider:
    name = "openai"

    def __init__(self, settings: Settings, key: str, client: Any = None) -> None:
        self.settings = settings
        self.model = settings.openai_model
        self.client = client if client is not None else make_client(settings, key)
        self.sleep = time.sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIProvider:
        return cls(settings, api_key(settings))

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIProvider(model={self.model!r})"

    def call(self, what: str, fn: Any) -> Any:
        return call_with_retries(
            what, fn, lambda exc: classify(exc, self.model), self.settings.max_request_attempts, self.sleep
        )

    def generate(self, request: Request) -> Answer:
        body = chat_body(self.model, request.system, request.user, self.settings.temperature)

        def once() -> Any:
            return self.client.chat.completions.create(**body)

        try:
            completion = self.call("chat.completions.create", once)
        except RequestFailed as exc:
            return Answer(text=None, error=str(exc))
        return completion_answer(completion.model_dump(mode="json"))
