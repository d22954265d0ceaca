"""What the providers of OpenAI-style chat-completion APIs share (docs/DESIGN.md §6).

Both vendors take ``messages`` plus a ``response_format`` of type ``json_schema`` and answer
``choices[0].message.content``. This module holds that common wire format and
:class:`ChatCompletionsProvider`, the synchronous provider a vendor's folder completes with what
is its own (its SDK client and call, its key, how it classifies errors); the batch APIs are in
``chat_batches.py``, the retry loop in ``retries.py``.

The verdicts are asked for as ``{"answers": [...]}``: strict structured output needs an object
at the root, and the category is an enum of the nine categories. :func:`answer_text` unwraps
the array again, so validation sees what it sees from every provider.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, ClassVar

from ..limits import limiter_for
from .base import VERDICT_FIELDS, Answer, ProviderSpec, Request, verdict_properties
from .retries import Failure, RequestFailed, call_with_retries

if TYPE_CHECKING:
    from ..settings import Settings
    from .base import BatchBackend, Provider
    from .chat_batches import ChatBatchBackend

ANSWERS_FIELD = "answers"


def verdict_schema() -> dict[str, Any]:
    """The JSON schema of an answer, strict-mode compatible (every field required, no extras)."""
    verdict = {
        "type": "object",
        "properties": verdict_properties(),
        "required": list(VERDICT_FIELDS),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {ANSWERS_FIELD: {"type": "array", "items": verdict}},
        "required": [ANSWERS_FIELD],
        "additionalProperties": False,
    }


def response_format() -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": "flag_verdicts", "strict": True, "schema": verdict_schema()},
    }


def chat_body(model: str | None, system: str, user: str, temperature: float) -> dict[str, Any]:
    """The body of one chat completion (``model`` None: the batch job names it)."""
    body: dict[str, Any] = {
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "temperature": temperature,
        "response_format": response_format(),
    }
    if model is not None:
        body = {"model": model, **body}
    return body


def answer_text(content: Any) -> str | None:
    """The verdict array as text: ``{"answers": [...]}`` unwrapped; anything else as it came
    (validation repairs or rejects it and says why)."""
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if not isinstance(content, str) or not content.strip():
        return None
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if isinstance(data, dict) and isinstance(data.get(ANSWERS_FIELD), list):
        return json.dumps(data[ANSWERS_FIELD], ensure_ascii=False)
    return content


def completion_answer(completion: dict[str, Any]) -> Answer:
    """An Answer from a chat completion's JSON (a sync response or a batch output line's body).

    Usage: ``input_tokens`` counts the whole prompt (cached part included, as ``cached_tokens``
    says), ``output_tokens`` the visible answer, ``thinking_tokens`` the reasoning tokens the
    vendor bills as output on top of it.
    """
    choices = completion.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    finish = str(choice.get("finish_reason") or ("no choices" if not choices else ""))
    text = answer_text(message.get("content"))
    usage = completion.get("usage") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or {}
    thinking = int(output_details.get("reasoning_tokens") or 0)
    notes = [] if finish == "stop" else [f"finish reason {finish}"]
    refusal = message.get("refusal")
    return Answer(
        text=text,
        error="" if text else (f"refused: {refusal}" if refusal else f"empty answer ({finish})"),
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=max(0, int(usage.get("completion_tokens") or 0) - thinking),
        thinking_tokens=thinking,
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        notes=notes,
    )


class ChatCompletionsProvider:
    """Synchronous calls to a chat-completion API through its vendor's SDK.

    A subclass names its ``spec`` (name, model setting, key variables) and ``chat_call``, and
    implements :meth:`make_client`, :meth:`classify` and :meth:`complete`. Every call goes
    through :func:`retries.call_with_retries`: a 429 waits in the process's request limiter,
    shared with every job of the process (``limits.py``).
    """

    spec: ClassVar[ProviderSpec]
    chat_call: ClassVar[str]  # the SDK call, as messages name it

    def __init__(self, settings: Settings, key: str, client: Any = None) -> None:
        self.name = self.spec.name
        self.settings = settings
        self.model = self.spec.model(settings)
        self.client = client if client is not None else self.make_client(settings, key)
        self.sleep = time.sleep
        self.limiter = limiter_for(settings)  # shared by every job of the process

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatCompletionsProvider:
        return cls(settings, cls.api_key(settings))

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(model={self.model!r})"

    @staticmethod
    def api_key(settings: Settings) -> str:
        """The key from the environment (ProviderError naming the variable when it is missing)."""
        raise NotImplementedError

    def make_client(self, settings: Settings, key: str) -> Any:
        raise NotImplementedError

    def classify(self, exc: BaseException) -> Failure:
        """What an SDK error means for the run (see ``retries.Failure``)."""
        raise NotImplementedError

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One chat completion through the SDK, as the API's JSON."""
        raise NotImplementedError

    def call(self, what: str, fn: Any) -> Any:
        return call_with_retries(
            what, fn, self.classify, self.settings.max_request_attempts, self.sleep, self.limiter
        )

    def generate(self, request: Request) -> Answer:
        body = chat_body(self.model, request.system, request.user, self.settings.temperature)
        try:
            completion = self.call(self.chat_call, lambda: self.complete(body))
        except RequestFailed as exc:
            return Answer(text=None, error=str(exc))
        return completion_answer(completion)


class ChatCompletionsSpec(ProviderSpec):
    """The spec of a chat-completion provider: its answers depend on the temperature only, and
    its classes come from its folder when a job needs them (importing the spec imports no SDK)."""

    def fingerprint(self, settings: Settings) -> dict[str, Any]:
        return {"temperature": settings.temperature}

    def backend_class(self) -> type[ChatBatchBackend]:
        """The provider's batch backend class (its ``provider_class`` makes synchronous calls)."""
        raise NotImplementedError

    def make(self, settings: Settings) -> Provider:
        return self.backend_class().provider_class.from_settings(settings)

    def make_batch_backend(self, settings: Settings) -> BatchBackend:
        return self.backend_class()(settings)
