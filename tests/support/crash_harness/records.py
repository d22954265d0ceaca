"""Settings and records of the crash harness: the modes, the options, one run, one kill, a
baseline and a trial, and the constants the harness checks against."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_categoriser.outputs import COMBINED_COLUMNS, DOCUMENT_COLUMNS

REPO = Path(__file__).resolve().parents[3]
SAMPLE_DOCUMENTS = REPO / "Documents"
SHARED_DOCUMENTS = REPO.parent / "shared" / "corpus" / "Documents"
OUTPUT_NAMES = ("document_reports", "combined-report.csv", "run-summary.json")
VIEW_NAMES = ("report.html", "triage.xlsx", "languagetool")  # not compared: built from the above
ENV_DROP = {
    "LLM_PRIMARY",
    "LLM_CATEGORISER_BATCH_SIZE",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
}
FAKE_KEY = "crash-harness-fake-key"
TMP_NAME = re.compile(r"^\..+\.tmp$")
DAG_MARKER = b"Building DAG of jobs"
DOCUMENT_HEADER = list(DOCUMENT_COLUMNS)
COMBINED_HEADER = list(COMBINED_COLUMNS)
GOOD_STATUSES = {"ok", "repaired"}


@dataclass(frozen=True)
class Mode:
    name: str
    config: tuple[str, ...]
    emulator: bool
    batch: bool


MODES = {
    "offline": Mode("offline", ("provider=offline", "mode=sync"), emulator=False, batch=False),
    "sync": Mode("sync", ("provider=gemini", "mode=sync"), emulator=True, batch=False),
    "batch": Mode("batch", ("provider=gemini", "mode=batch"), emulator=True, batch=True),
}


@dataclass
class Options:
    workflow: Path = REPO
    cores: int = 2
    subjects: tuple[str, ...] = ()
    on_stale_lock: str = "unlock"  # or "stop"
    check_noop: bool = True
    max_extra_runs: int = 6
    run_timeout: float = 3600.0
    keep: bool = False  # keep every workspace
    keep_failures: bool = True  # keep the workspaces of trials with differences
    verbose: bool = True
    # per_poll: a job is PENDING, RUNNING, then done at the next polls (batch runs see pending
    # jobs); first_poll: done at the first poll (fewer runs, for the quick test)
    batch_completion: str = "per_poll"
    # kill j comes at f_j * reach * (estimated remaining time): below 1 makes a kill after the
    # end of a run (a kill point not reached, made up by another trial) rarer
    reach: float = 1.0
    # seconds the emulator takes per generateContent call (sync mode): kills then also land
    # while a request is in flight
    latency: float = 0.0


@dataclass
class Invocation:
    index: int
    kill_after: float | None
    killed: bool
    returncode: int | None
    outcome: str  # ok | killed | pending | locked | failed | unlock | dry-run | timeout
    seconds: float
    startup: float | None  # seconds until Snakemake had built the DAG
    log: str
    tail: str = ""


@dataclass
class Kill:
    fraction: float | None  # seeded plan: share of the estimated remaining time
    planned: float | None = None  # moment on the trial's timeline (s)
    # or an event: "<endpoint>#<n>", the emulator kills the run right after it has served the
    # n-th successful call of that endpoint and before the answer is sent (the answer is lost)
    event: str | None = None
    fired: bool = False
    invocation: int | None = None
    into_invocation: float | None = None  # seconds after that run started
    phase: str = ""  # startup | scheduling | idle | the rules of the jobs in flight
    in_flight: dict[str, int] = field(default_factory=dict)
    corrupt: list[str] = field(default_factory=list)
    tmp_files: list[str] = field(default_factory=list)
    locks_left: bool = False


@dataclass
class Baseline:
    corpus: str
    mode: str
    runs: int
    seconds: float
    startup: float
    jobs: int  # Snakemake jobs of the first run (its "Job stats" total)
    outputs: dict[str, str]
    summary: Any
    issues: int
    batch_creations: int
    generate_content_calls: int
    endpoint_counts: dict[str, int]
    invocations: list[Invocation]
    problems: list[str]


@dataclass
class Trial:
    corpus: str
    mode: str
    index: int
    seed: str
    kills: list[Kill]
    invocations: list[Invocation] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    blocked_reruns: int = 0
    unlocks: int = 0
    batch_creations: int = 0
    generate_content_calls: int = 0
    tmp_leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workspace: str = ""

    @property
    def fired(self) -> int:
        return sum(k.fired for k in self.kills)

    @property
    def runs(self) -> int:
        return sum(i.outcome not in ("unlock", "dry-run") for i in self.invocations)

    @property
    def events(self) -> int:
        return sum(k.fired and bool(k.event) for k in self.kills)

    @property
    def kill_times(self) -> list[float]:
        return [round(k.planned, 2) for k in self.kills if k.fired and k.planned is not None]
