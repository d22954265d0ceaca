"""What the batch APIs of OpenAI-style chat-completion vendors share (docs/DESIGN.md §6).

Both take a JSONL file of chat completion requests keyed by ``custom_id``, run it as a remote
job that carries metadata, and return an output and an error file keyed the same way.
:class:`ChatBatchBackend` holds that life cycle (adopt, upload, create, status, results); a
vendor's folder completes it with its SDK's calls, job states and field names.

``create`` is never retried blindly: every job carries its deterministic display name in its
metadata, and before creating (and after a failed create) the backend adopts a live job with
that name, so a crash between create and the handle leaves one job, not two.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from .base import DEAD_STATES, Answer, Created, ProviderError, Request, Status
from .chat_completions import ChatCompletionsProvider, completion_answer

if TYPE_CHECKING:
    from ..settings import Settings

ENDPOINT = "/v1/chat/completions"
NAME_FIELD = "llm_categoriser_job"  # the metadata field that holds a job's display name


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(
        json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines
    ).encode()


def item_error(line: dict[str, Any]) -> str:
    """Why one item of a job failed: the line's ``error``, else its response's status and message
    (OpenAI nests the message in ``error``, Mistral does not)."""
    error = line.get("error") or {}
    if error:
        return f"{error.get('code', '')} {error.get('message', '')}".strip()
    response = line.get("response") or {}
    body = response.get("body") or {}
    detail = body.get("error", body) if isinstance(body, dict) else None
    message = detail.get("message", "") if isinstance(detail, dict) else ""
    return f"HTTP {response.get('status_code')} {message}".strip()


def result_answers(data: bytes) -> dict[str, Answer]:
    """``custom_id -> Answer`` of a batch output or error file.

    A line with ``response.status_code == 200`` carries a chat completion; any other line is an
    item error, described by :func:`item_error`. Lines are matched by ``custom_id``, never
    by position; a line without one is skipped.
    """
    answers: dict[str, Answer] = {}
    for raw in data.decode("utf-8").splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        key = line.get("custom_id") if isinstance(line, dict) else None
        if not isinstance(key, str):
            continue
        response = line.get("response") or {}
        if response.get("status_code") == 200 and isinstance(response.get("body"), dict):
            answers[key] = completion_answer(response["body"])
        else:
            answers[key] = Answer(text=None, error=f"item error: {item_error(line)}")
    return answers


class ChatBatchBackend:
    """A vendor's batch API behind the ``BatchBackend`` interface.

    A subclass names its ``provider_class`` (the synchronous provider whose client, key and
    error classification it shares), its ``states`` (the vendor's job states to ours) and
    ``create_call``, and implements the SDK calls below ``--``.
    """

    provider_class: ClassVar[type[ChatCompletionsProvider]]
    states: ClassVar[dict[str, str]]
    create_call: ClassVar[str]

    def __init__(self, settings: Settings, key: str | None = None, client: Any = None) -> None:
        self._sync = self.provider_class(settings, key or self.provider_class.api_key(settings), client)
        self.provider = self._sync.name
        self.settings = settings
        self.model = self._sync.model
        self.client = self._sync.client

    @property
    def sync_provider(self) -> ChatCompletionsProvider:
        return self._sync

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        return self._sync.call(what, fn)

    def find_live(self, display_name: str) -> str | None:
        for job in self.list_jobs(display_name):
            if (job.metadata or {}).get(NAME_FIELD) == display_name and self.states.get(
                job.status
            ) not in DEAD_STATES:
                return str(job.id)
        return None

    def create(self, display_name: str, requests: list[Request]) -> Created:
        live = self.find_live(display_name)
        if live:
            return Created(live, "adopted", 0, adopted=True)
        data = jsonl([self.request_line(r) for r in requests])
        file_id = str(self.upload(f"{display_name}.jsonl", data).id)

        def create() -> Any:
            return self.create_job(file_id, display_name)

        try:
            job = create()
        except Exception as exc:
            failure = self._sync.classify(exc)
            if failure.kind in ("fatal", "exhausted"):
                raise ProviderError(failure.message, kind=failure.kind) from None
            # the job may exist although the answer was lost: adopt it rather than duplicate it
            self._sync.sleep(1.0)
            live = self.find_live(display_name)
            if live:
                return Created(live, "file", len(data), adopted=True, file_name=file_id)
            job = self.call(self.create_call, create)
        return Created(str(job.id), "file", len(data), adopted=False, file_name=file_id)

    def status(self, name: str) -> Status:
        job = self.get_job(name)
        state = self.states.get(str(job.status), str(job.status).upper())
        created = datetime.fromtimestamp(job.created_at, UTC).isoformat() if job.created_at else None
        return Status(state, self.job_error(job), created)

    def results(self, name: str, requests: list[Request]) -> dict[str, Answer]:
        answers: dict[str, Answer] = {}
        for file_id in self.result_files(self.get_job(name)):  # outputs win over errors
            if isinstance(file_id, str) and file_id:
                answers.update(result_answers(self.download(file_id)))
        return answers

    # -- the vendor's SDK calls (each retried through ``call``, but ``create_job``) -------------

    def list_jobs(self, display_name: str) -> Iterable[Any]:
        """Recent jobs (with ``id``, ``status`` and ``metadata``), those of this name among them."""
        raise NotImplementedError

    def request_line(self, request: Request) -> dict[str, Any]:
        """One line of the job's input file."""
        raise NotImplementedError

    def upload(self, file_name: str, data: bytes) -> Any:
        """The input file, uploaded for a batch job (the answer has its ``id``)."""
        raise NotImplementedError

    def create_job(self, file_id: str, display_name: str) -> Any:
        """One attempt at creating the job (the answer has its ``id``)."""
        raise NotImplementedError

    def get_job(self, name: str) -> Any:
        raise NotImplementedError

    def job_error(self, job: Any) -> str:
        """What the job says went wrong ("" when nothing)."""
        raise NotImplementedError

    def result_files(self, job: Any) -> tuple[str | None, str | None]:
        """The ids of the job's error file and output file (None while there is none)."""
        raise NotImplementedError

    def download(self, file_id: str) -> bytes:
        raise NotImplementedError

    def cancel(self, name: str) -> None:
        raise NotImplementedError
