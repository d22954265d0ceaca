"""What the tests of the OpenAI and Mistral emulators share: the prompt, the structured-output
schema the providers send, and one adapter per vendor SDK (``openai``, ``mistralai``) so that a
test can ask either emulator through its real SDK and read the error it raised."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from mistralai.client import Mistral, errors
from mistralai.client.utils import BackoffStrategy, RetryConfig

from support.emulators.chat_api import ChatApiEmulator
from support.emulators.mistral import MistralEmulator
from support.emulators.openai import OpenAIEmulator

PROMPT = "| issue_id | issue |\n| --- | --- |\n| 0 | teh |\n| 1 | recieve |\n| 2 | Aberystwyth |"
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdicts",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"answers": {"type": "array", "items": {"type": "object"}}},
            "required": ["answers"],
            "additionalProperties": False,
        },
    },
}
MESSAGES = [{"role": "system", "content": "Triage."}, {"role": "user", "content": PROMPT}]


@dataclass(frozen=True)
class Sdk:
    """One vendor's SDK and the error shapes its emulator answers with."""

    name: str
    emulator: type[ChatApiEmulator]
    key: str
    model: str
    client: Callable[[ChatApiEmulator, str, bool], Any]  # (emulator, key, retrying) -> client
    complete: Callable[..., Any]  # (client, model=..., messages=..., **options) -> completion
    errors: dict[int, type[Exception]]  # what the SDK raises for an HTTP error status
    error: type[Exception]  # ... for any other status
    code: Callable[[Any], str | None]  # the error's code or type, as the vendor names it
    headers: Callable[[Any], Any]  # the error's HTTP response headers
    retry_header: tuple[str, str]  # (header, value) of a 429 with ``retry_after=0.01``
    rate_limit_code: str
    quota_code: str
    unknown_model: tuple[str, int, str]  # (model, status, code)
    invalid_key_code: str | None  # ``None``: the vendor's 401 body names no code

    def __str__(self) -> str:
        return self.name

    def raises(self, status: int) -> type[Exception]:
        """The exception class the SDK raises for ``status``."""
        return self.errors.get(status, self.error)

    def ask(self, client: Any, **options: Any) -> Any:
        return self.complete(client, model=options.pop("model", self.model), messages=MESSAGES, **options)


def _openai_client(emu: ChatApiEmulator, key: str, retrying: bool) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=emu.url, max_retries=2 if retrying else 0)


def _mistral_client(emu: ChatApiEmulator, key: str, retrying: bool) -> Mistral:
    retry = RetryConfig("backoff", BackoffStrategy(10, 100, 1.5, 5000), False) if retrying else None
    return Mistral(api_key=key, server_url=emu.url, retry_config=retry)


def _mistral_code(exc: Any) -> str | None:
    return json.loads(exc.body).get("type")


OPENAI_SDK = Sdk(
    name="openai",
    emulator=OpenAIEmulator,
    key="sk-emulator-test-0123456789abcdef",
    model="gpt-4.1-mini",
    client=_openai_client,
    complete=lambda client, **kw: client.chat.completions.create(**kw),
    errors={
        401: openai.AuthenticationError,
        404: openai.NotFoundError,
        429: openai.RateLimitError,
        500: openai.InternalServerError,
        503: openai.InternalServerError,
    },
    error=openai.APIStatusError,
    code=lambda exc: exc.code,
    headers=lambda exc: exc.response.headers,
    retry_header=("retry-after-ms", "10"),
    rate_limit_code="rate_limit_exceeded",
    quota_code="insufficient_quota",
    unknown_model=("gpt-0", 404, "model_not_found"),
    invalid_key_code="invalid_api_key",
)
MISTRAL_SDK = Sdk(
    name="mistral",
    emulator=MistralEmulator,
    key="mistral-emulator-test-key-0123456789",
    model="mistral-small-latest",
    client=_mistral_client,
    complete=lambda client, **kw: client.chat.complete(**kw),
    errors={},
    error=errors.SDKError,
    code=_mistral_code,
    headers=lambda exc: exc.raw_response.headers,
    retry_header=("retry-after", "0.01"),
    rate_limit_code="rate_limited",
    quota_code="usage_limit_exceeded",
    unknown_model=("mistral-none", 400, "invalid_model"),
    invalid_key_code=None,
)
SDKS = [OPENAI_SDK, MISTRAL_SDK]
