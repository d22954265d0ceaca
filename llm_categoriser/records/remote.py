"""Records of remote jobs (``<data_dir>/jobs/<job>/`` and the ledger): handles, state, results."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from ..costs.usage import Spend
from .base import Record
from .results import ResultSet

RemoteStatus = Literal["pending", "completed", "dead", "error"]


class RemoteBatch(Record):
    subject: str
    document: str
    batch_id: str
    index: int = Field(description="position of the batch in its document")
    fingerprint: str
    flag_keys: list[str]
    cached: bool = False


class RemoteJobHandle(Record):
    """``handle.json`` (the submit rule's output): the remote job and what it carries."""

    fix: ClassVar[str] = "delete the job's folder under data/jobs and run again (it is resubmitted)"
    job: str
    provider: str
    model: str
    name: str | None = None
    display_name: str = ""
    attempt: int = 1
    created_at: str = ""
    state: str = "SUBMITTED"
    transport: str = ""
    payload_bytes: int = 0
    adopted: bool = False
    error: str = ""
    expected_cost_usd: float | None = Field(default=None, description="the estimate reserved at submission")
    batches: list[RemoteBatch]


class DeadAttempt(Record):
    attempt: int
    name: str | None
    state: str
    error: str = ""
    at: str


class RemoteJobAttempts(Record):
    """``attempts.json``: how many times the job died (FAILED, EXPIRED, CANCELLED)."""

    fix: ClassVar[str] = RemoteJobHandle.fix
    attempt: int = 1
    history: list[DeadAttempt] = Field(default_factory=list)


class RemoteJobState(Record):
    """``state.json``: what the last submit or fetch of the job found, for the CLI.

    ``handle_created_at`` ties it to one handle: a state written for an earlier submission
    is stale once the job is resubmitted.
    """

    fix: ClassVar[str] = RemoteJobHandle.fix
    job: str
    status: RemoteStatus
    state: str = ""
    name: str | None = None
    handle_created_at: str = ""
    message: str = ""
    error_type: str = ""
    checked_at: float = Field(description="seconds since the epoch")


class RemoteJobResults(ResultSet):
    """``results.json`` (the fetch rule's output): the answers of every batch of the job."""

    model_config = ConfigDict(extra="forbid")
    fix: ClassVar[str] = RemoteJobHandle.fix
    job: str
    name: str | None
    state: str
    handle_created_at: str = ""
    fetched_at: str
    spend: Spend = Field(default_factory=Spend, description="what the job and its follow-ups cost")


LedgerStatus = Literal["live", "completed", "dead", "superseded", "cancelled"]


class JobProgress(Record):
    """How many of a remote job's requests its provider reports done."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0


class LedgerJob(Record):
    """``ledger/<provider>/<name>.json``: one remote batch job, from its creation to its end.

    ``status``: ``live`` (carries batches of the plan; fetch it), ``completed`` (fetched),
    ``dead`` (FAILED or EXPIRED), ``cancelled`` (by ``batch-cancel``), ``superseded`` (its job
    id was submitted again with other content, and it was cancelled then).
    """

    fix: ClassVar[str] = (
        "it records a remote job: if it is damaged, cancel that job in the provider's console "
        "and delete the file"
    )
    provider: str
    name: str = Field(description="the provider's name of the job, e.g. batches/abc123")
    job: str = Field(description="the plan's job id that submitted it")
    display_name: str = ""
    model: str
    settings: dict[str, Any] = Field(description="the run settings the job was created with")
    batches: list[RemoteBatch]
    created_at: str
    adopted: bool = False
    status: LedgerStatus = "live"
    state: str = "PENDING"
    checked_at: str = ""
    progress: JobProgress | None = None
    note: str = ""
