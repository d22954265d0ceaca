"""Mistral synchronous calls: chat completions with JSON output (``response_format`` of type
``json_schema``, the category an enum), through the official ``mistralai`` SDK.

The SDK retries nothing unless given a ``retry_config``, and none is given: the retry loop in
``retries.py`` retries 429 (waiting in the process's request limiter) and 5xx, honouring
``Retry-After``, and transport errors, and hands over to the next provider when the attempts
run out; 401/403 (the key) and an unknown model stop the run with a message. Every 4xx/5xx
reaches us as ``SDKError`` with the status and the raw body. The key comes from
``MISTRAL_API_KEY`` only, read inside the job; ``mistral_base_url`` points the SDK at another
server (the tests use a loopback emulator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...settings import Settings
from ..chat_completions import ChatCompletionsProvider
from ..retries import Failure, error_body, http_failure
from . import SPEC


def api_key(env: Mapping[str, str] | None = None) -> str:
    return SPEC.required_key(
        "provider mistral needs an API key: export MISTRAL_API_KEY=... in the shell that runs "
        "snakemake (never in config.yaml), or choose another provider.",
        env,
    )


def classify(exc: BaseException, model: str = "") -> Failure:
    """What a ``mistralai`` SDK error means for the run (see ``retries.Failure``)."""
    import httpx2
    from mistralai.client import errors

    if isinstance(exc, errors.MistralError):
        status = exc.status_code
        body = error_body(exc.body)
        message = str(body.get("message") or body.get("detail") or exc.body or "")[:300]
        kind = str(body.get("type") or "")
        what = f"HTTP {status}{' ' + kind if kind else ''}: {message}"
        return http_failure(
            status,
            what,
            getattr(exc.raw_response, "headers", None),
            key_rejected=f"Mistral rejected the API key (HTTP {status}). Check MISTRAL_API_KEY (create "
            f"a key in the Mistral console), export it and rerun.",
            model_unknown=f"Mistral does not offer model {model!r} ({what}). Set mistral_model "
            f"(--config mistral_model=...)."
            if status == 404 or kind == "invalid_model"
            else None,
        )
    if isinstance(exc, httpx2.TransportError | errors.NoResponseError):
        return Failure("transient", f"server unreachable ({type(exc).__name__}: {exc})")
    raise exc


class MistralProvider(ChatCompletionsProvider):
    spec = SPEC
    chat_call = "chat.complete"

    @staticmethod
    def api_key(settings: Settings) -> str:
        return api_key()

    def make_client(self, settings: Settings, key: str) -> Any:
        from mistralai.client import Mistral

        return Mistral(
            api_key=key,
            server_url=settings.mistral_base_url or None,
            timeout_ms=int(settings.request_timeout * 1000),
        )

    def classify(self, exc: BaseException) -> Failure:
        return classify(exc, self.model)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.chat.complete(**body).model_dump(mode="json", by_alias=True)
