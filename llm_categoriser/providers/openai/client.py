"""OpenAI synchronous calls: chat completions with structured output (a JSON schema whose
category is an enum), through the official ``openai`` SDK.

The SDK's own retries are off (``max_retries=0``): the retry loop in ``retries.py`` sees every
error, so a spent quota (429 ``insufficient_quota``) hands over to the next provider at once
instead of being retried, rate limits (429) wait in the process's request limiter and 5xx are
retried, both honouring the server's ``retry-after-ms`` / ``retry-after``, and an invalid key
(401) or unknown model (404) stops the run with a message. The key comes from
``OPENAI_API_KEY`` only, read inside the job; a server given by ``openai_base_url`` or
``OPENAI_BASE_URL`` may need none (a local vLLM, Ollama or llama.cpp server), and then a
placeholder is sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ...settings import Settings
from ..base import ProviderError
from ..chat_completions import ChatCompletionsProvider
from ..retries import Failure, http_failure
from . import BASE_URL_VARIABLE, SPEC

NO_KEY = "no-key"  # sent to a keyless local server: the SDK insists on some key


def base_url(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return settings.openai_base_url or env.get(BASE_URL_VARIABLE, "").strip() or None


def api_key(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    key = SPEC.key_in(env)
    if key:
        return key
    if base_url(settings, env):
        return NO_KEY
    raise ProviderError(
        "provider openai needs an API key: export OPENAI_API_KEY=... in the shell that runs "
        "snakemake (never in config.yaml), or point openai_base_url (or OPENAI_BASE_URL) at an "
        "OpenAI-compatible server that needs no key."
    )


def classify(exc: BaseException, model: str = "") -> Failure:
    """What an ``openai`` SDK error means for the run (see ``retries.Failure``)."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        code = str(getattr(exc, "code", "") or "")
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        message = str(detail.get("message") or exc.message)
        what = f"HTTP {status}{' ' + code if code else ''}: {message}"
        return http_failure(
            status,
            what,
            exc.response.headers,
            # the vendor's message quotes part of the key: only the status and code are kept
            key_rejected=f"OpenAI rejected the API key (HTTP {status} {code or 'unauthorised'}). Check "
            f"OPENAI_API_KEY (create a key at platform.openai.com), export it and rerun.",
            model_unknown=f"The server does not offer model {model!r} ({what}). Set openai_model to a "
            f"model it serves (--config openai_model=...)."
            if status == 404 and (code == "model_not_found" or "model" in message.lower())
            else None,
            spent=f"OpenAI quota spent ({what}). Add credit or raise the project's limit, or let "
            f"LLM_FALLBACK name another provider."
            if status == 429 and code == "insufficient_quota"
            else None,
            retryable=(408, 409, 429),
        )
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return Failure("transient", f"server unreachable ({type(exc).__name__}: {exc})")
    raise exc


class OpenAIProvider(ChatCompletionsProvider):
    spec = SPEC
    chat_call = "chat.completions.create"

    @staticmethod
    def api_key(settings: Settings) -> str:
        return api_key(settings)

    def make_client(self, settings: Settings, key: str) -> Any:
        import openai

        return openai.OpenAI(
            api_key=key, base_url=base_url(settings), max_retries=0, timeout=settings.request_timeout
        )

    def classify(self, exc: BaseException) -> Failure:
        return classify(exc, self.model)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.chat.completions.create(**body).model_dump(mode="json")
