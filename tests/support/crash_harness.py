"""Crash-safety harness: SIGKILL the whole Snakemake run at random moments, rerun, compare.

For each corpus (the bundled sample, and a temporary copy of the reference corpus when present)
and each mode (``offline``; ``sync`` and ``batch`` with the gemini provider against the loopback
emulator), the harness

1. runs the pipeline once without interruption (the *baseline*): its final CSVs, the number of
   remote batch jobs it created, its duration ``D`` (all its runs; batch mode needs several) and
   its start-up cost (until Snakemake has built the DAG);
2. runs *trials*: a fresh workspace and a fresh emulator; Snakemake starts in its own session
   (``start_new_session=True``) and its whole process group is killed with ``SIGKILL`` at seeded
   random moments; after every kill the harness checks that no partially written file is visible
   under ``Documents/`` or ``data/``, then it reruns until the pipeline succeeds. A trial can kill
   several runs in a row (``--kills-per-trial``): kill ``j`` comes at ``f_j * R_j`` seconds on
   the trial's timeline after kill ``j-1``, where ``R_j`` estimates the time still needed
   (``D`` minus the progress the earlier runs made) and the fractions ``f_j`` of a mode are
   stratified over ``[0, 1)`` from the seed, so the kill points cover the whole run. In gemini
   modes, ``--event-kills`` more trials are killed by the emulator itself right after it served a
   seeded n-th call (a generateContent answer, a batch creation, a status poll) and before the
   answer goes out: the remote side did the work, the pipeline never learns it;
3. compares each trial's final CSVs (every ``Documents/*/document_reports/*.csv`` and
   ``Documents/combined-report.csv``, plus ``run-summary.json``) with the baseline's, checks that
   no flag is lost and that the emulator created exactly as many batch jobs as the baseline run
   (no job fails here, so the dead-job resubmission may add none).

Anything else is a *difference*: a rerun blocked by a stale ``.snakemake/locks`` (recorded, then
``snakemake --unlock`` is run explicitly and visibly so that the other checks still run;
``--on-stale-lock stop`` ends the trial instead), a failed rerun, a run that does not converge, a
corrupt or partial file. Hidden temporary files (``.<name>.<random>.tmp`` from
``atomic_write_bytes``) are not outputs: they are counted (``tmp_leftovers``), never parsed.

The emulator stays in this process, outside the killed process group; its batch jobs complete on
their own (``batch_mode="per_poll"``, or at the first poll with ``--batch-completion first_poll``),
so reruns converge; it answers generateContent after ``--latency`` seconds (default 0.1), so kills
also land while requests are in flight. Batch-mode runs use ``--keep-going``.

Replay a failure with the printed seed, or with the printed kill moments::

    python tests/support/crash_harness.py --corpus sample --modes batch --seed 1234 --only-trial 7
    python tests/support/crash_harness.py --corpus sample --modes sync --kill-at 6.25 --kill-at 11.5
    python tests/support/crash_harness.py --corpus sample --modes batch \
        --kill-event models.batchGenerateContent#2

(``--kill-at`` runs one trial killed at exactly these moments of its timeline, in seconds;
``--kill-event`` one trial per event.) Pass the same ``--subjects``/``--batch-completion``/
``--latency`` as the run being replayed. On a loaded machine a replay hits the same phase of the
run, not necessarily the same instruction.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:  # run as a script: make ``support`` importable
    sys.path.insert(0, str(TESTS))

from llm_categoriser.outputs import COMBINED_COLUMNS, DOCUMENT_COLUMNS  # noqa: E402
from support.emulators.gemini import GeminiEmulator  # noqa: E402

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


class KillingEmulator(GeminiEmulator):
    """The emulator, able to SIGKILL the running Snakemake process group at an event."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pgid: int | None = None
        self._trigger: tuple[str, int] | None = None
        self._seen = 0
        self.fired_event = False

    def arm(self, event: str | None) -> None:
        """Kill at ``event`` ("<endpoint>#<n>", counted from now on, across runs); None: never."""
        with self._lock:
            self.fired_event, self._seen, self._trigger = False, 0, None
            if event:
                endpoint, _, nth = event.rpartition("#")
                self._trigger = (endpoint, int(nth))

    def attach(self, pgid: int | None) -> None:
        """The process group to kill (the run in progress), or None between runs."""
        with self._lock:
            self.pgid = pgid

    def _dispatch(self, method, path, query, headers, body, route):  # type: ignore[no-untyped-def]
        response = super()._dispatch(method, path, query, headers, body, route)
        with self._lock:
            trigger, pgid = self._trigger, self.pgid
            hit = trigger is not None and route.endpoint == trigger[0] and response.status == 200
            if hit:
                self._seen += 1
                hit = self._seen == trigger[1] and pgid is not None and not self.fired_event
                self.fired_event = self.fired_event or hit
        if hit and pgid is not None:
            kill_group(pgid)  # before the answer goes out: the job exists, the client never knows
        return response


class Harness:
    def __init__(self, options: Options, root: Path, parallel: int = 1) -> None:
        self.options = options
        self.root = root
        self._print_lock = threading.Lock()
        self._counter = 0
        self._slots = threading.Semaphore(max(1, parallel))

    def say(self, text: str) -> None:
        if self.options.verbose:
            with self._print_lock:
                print(text, flush=True)

    # -- workspaces and runs -------------------------------------------------

    def workspace(self, documents: Path, label: str) -> Path:
        with self._print_lock:
            self._counter += 1
            dest = self.root / f"{self._counter:03d}-{label}"
        dest.mkdir(parents=True)
        shutil.copytree(
            documents, dest / "Documents", ignore=shutil.ignore_patterns(*OUTPUT_NAMES, *VIEW_NAMES)
        )
        shutil.copy(self.options.workflow / "config.yaml", dest / "config.yaml")
        (dest / "logs").mkdir()
        return dest

    def command(self, work: Path, mode: Mode, *extra: str) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(self.options.workflow / "Snakefile"),
            "--directory",
            str(work),
            "--cores",
            str(self.options.cores),
            *extra,
        ]
        if mode.batch and "--unlock" not in extra:
            cmd.append("--keep-going")
        config = [*mode.config, "progress=verbose"]  # the per-job lines say what was in flight
        if self.options.subjects:
            config.append(f"subjects=[{','.join(self.options.subjects)}]")
        return [*cmd, "--config", *config]

    def emulator(self) -> KillingEmulator:
        """A fresh emulator whose batch jobs complete on their own, so that reruns converge."""
        if self.options.batch_completion == "first_poll":
            emu = KillingEmulator(batch_mode="auto", complete_after_polls=1, latency=self.options.latency)
        else:
            emu = KillingEmulator(batch_mode="per_poll", latency=self.options.latency)
        emu.start()
        return emu

    @staticmethod
    def environment(emu: GeminiEmulator | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
        if emu is not None:
            env["GOOGLE_GEMINI_BASE_URL"] = emu.url
            env["GEMINI_API_KEY"] = FAKE_KEY
        return env

    def invoke(
        self,
        work: Path,
        mode: Mode,
        env: dict[str, str],
        index: int,
        kill_after: float | None = None,
        extra: tuple[str, ...] = (),
        event: tuple[KillingEmulator, str] | None = None,
    ) -> Invocation:
        """One Snakemake run in its own session; SIGKILL its process group after ``kill_after`` s
        (or when the emulator sees ``event``)."""
        log = work / "logs" / f"run-{index:02d}.log"
        limit = self.options.run_timeout if kill_after is None else max(0.0, kill_after)
        startup: float | None = None
        rc: int | None = None
        with self._slots, open(log, "wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(
                self.command(work, mode, *extra),
                cwd=work,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if event is not None:
                event[0].attach(proc.pid)
            while True:
                elapsed = time.monotonic() - started
                if startup is None and DAG_MARKER in log.read_bytes():
                    startup = elapsed
                if elapsed >= limit:
                    break
                try:
                    rc = proc.wait(timeout=min(limit - elapsed, 0.05 if startup is None else 1.0))
                    break
                except subprocess.TimeoutExpired:
                    continue
            if rc is None:
                kill_group(proc.pid)
                proc.wait()
            seconds = time.monotonic() - started
            if event is not None:
                event[0].attach(None)
                if event[0].fired_event:
                    kill_group(proc.pid)  # wait until the rest of the group is gone, too
        by_event = event is not None and event[0].fired_event
        text = log.read_text(encoding="utf-8", errors="replace")
        if startup is None and DAG_MARKER.decode() in text:
            startup = seconds
        killed = (rc is None and kill_after is not None) or by_event
        if killed:
            outcome = "killed"
        elif rc is None:
            outcome = "killed" if killed else "timeout"
        elif "--unlock" in extra:
            outcome = "unlock"
        elif "--dry-run" in extra:
            outcome = "dry-run"
        else:
            outcome = classify(rc, text, mode)
        return Invocation(
            index,
            None if kill_after is None else round(kill_after, 3),
            killed,
            rc,
            outcome,
            round(seconds, 3),
            None if startup is None else round(startup, 3),
            str(log),
            "" if outcome in ("ok", "killed", "unlock", "dry-run") else text[-3000:],
        )

    # -- baseline ------------------------------------------------------------

    def baseline(self, corpus: str, documents: Path, mode: Mode) -> Baseline:
        work = self.workspace(documents, f"{corpus}-{mode.name}-baseline")
        emu = self.emulator() if mode.emulator else None
        try:
            env = self.environment(emu)
            invocations: list[Invocation] = []
            problems: list[str] = []
            while True:
                inv = self.invoke(work, mode, env, len(invocations))
                invocations.append(inv)
                if inv.outcome == "ok":
                    break
                if inv.outcome != "pending" or len(invocations) >= 8:
                    raise RuntimeError(
                        f"baseline {corpus}/{mode.name} failed ({inv.outcome}, see {inv.log}):\n{inv.tail}"
                    )
            outputs = final_outputs(work)
            issues = planned_issues(work)
            rows = csv_rows(outputs.get("Documents/combined-report.csv", ""))
            bad = [r for r in rows if r.get("status") not in GOOD_STATUSES]
            if len(rows) != issues or bad:
                problems.append(
                    f"baseline combined report has {len(rows)} row(s) for {issues} planned "
                    f"flag(s), {len(bad)} not ok"
                )
            problems += [f"baseline: {p}" for p in scan_files(work)[0]]
            stats = emu.stats() if emu else {}
            base = Baseline(
                corpus=corpus,
                mode=mode.name,
                runs=len(invocations),
                seconds=round(sum(i.seconds for i in invocations), 3),
                startup=invocations[0].startup or 0.0,
                jobs=(job_progress(Path(invocations[0].log)) or (0, 0))[1],
                outputs=outputs,
                summary=read_summary(work),
                issues=issues,
                batch_creations=int(stats.get("batch_creations", 0)),
                generate_content_calls=int(stats.get("generate_content_calls", 0)),
                endpoint_counts=dict(stats.get("endpoint_counts", {})),
                invocations=invocations,
                problems=problems,
            )
        finally:
            if emu is not None:
                emu.stop()
        if not self.options.keep:
            shutil.rmtree(work, ignore_errors=True)
        self.say(
            f"[{corpus}/{mode.name}] baseline: {base.runs} run(s), {base.seconds:.1f} s "
            f"(start-up {base.startup:.1f} s), {len(base.outputs)} output file(s), {base.issues} flag(s), "
            f"{base.batch_creations} batch job(s)"
        )
        return base

    # -- trials ----------------------------------------------------------------

    def trial(
        self,
        corpus: str,
        documents: Path,
        mode: Mode,
        base: Baseline,
        index: int,
        seed: str,
        kills: list[Kill],
    ) -> Trial:
        result = Trial(corpus, mode.name, index, seed, kills)
        work = self.workspace(documents, f"{corpus}-{mode.name}-t{index:02d}")
        result.workspace = str(work)
        emu = self.emulator() if mode.emulator else None
        started = time.monotonic()
        try:
            env = self.environment(emu)
            self._run_trial(work, mode, env, base, result, emu)
            for kill in result.kills:
                if not kill.fired:
                    kill.invocation = None
            self._final_checks(work, emu, base, result)
        finally:
            if emu is not None:
                stats = emu.stats()
                result.batch_creations = int(stats["batch_creations"])
                result.generate_content_calls = int(stats["generate_content_calls"])
                emu.stop()
        result.seconds = round(time.monotonic() - started, 3)
        times = ", ".join(f"{k.planned:.2f}s ({k.phase})" if k.fired else "not reached" for k in result.kills)
        verdict = "OK" if not result.differences else f"{len(result.differences)} DIFFERENCE(S)"
        self.say(
            f"[{corpus}/{mode.name}] trial {index} (seed {seed}): killed at {times}; "
            f"{result.runs} run(s), {result.batch_creations} batch job(s), "
            f"{len(result.tmp_leftovers)} temp file(s) left: {verdict}"
        )
        for diff in result.differences:
            self.say(f"    - {diff}")
        if result.differences and self.options.keep_failures:
            self.say(f"    workspace kept: {work}")
        elif not self.options.keep:
            shutil.rmtree(work, ignore_errors=True)
        return result

    def _run_trial(
        self,
        work: Path,
        mode: Mode,
        env: dict[str, str],
        base: Baseline,
        result: Trial,
        emu: GeminiEmulator | None = None,
    ) -> None:
        timeline = 0.0  # seconds of Snakemake runs so far in this trial
        segment_start = 0.0  # the moment of the previous kill
        jobs_left = base.jobs  # Snakemake jobs still to run after that kill
        pending_kills = list(result.kills)
        max_runs = base.runs + len(result.kills) + self.options.max_extra_runs
        index = 0
        while True:
            if result.runs >= max_runs:
                result.differences.append(
                    f"[not-converged] still not done after {result.runs} run(s) "
                    f"(uninterrupted: {base.runs}); last outcome {result.invocations[-1].outcome}"
                )
                return
            kill = pending_kills[0] if pending_kills else None
            kill_after = None
            event = None
            if kill is not None and kill.event:
                assert isinstance(emu, KillingEmulator), "event kills need the emulator"
                if kill.invocation is None:  # armed once, counted over the runs until it fires
                    emu.arm(kill.event)
                    kill.invocation = -1
                event = (emu, kill.event)
            elif kill is not None:
                if kill.planned is None:
                    # a restart, then the baseline's pace on the jobs that are left
                    share = jobs_left / base.jobs if base.jobs else 1.0
                    remaining = base.startup + max(0.0, base.seconds - base.startup) * min(1.0, share)
                    kill.planned = round(
                        segment_start + (kill.fraction or 0.0) * remaining * self.options.reach, 3
                    )
                kill_after = max(0.0, kill.planned - timeline)
            inv = self.invoke(work, mode, env, index, kill_after, event=event)
            index += 1
            result.invocations.append(inv)
            timeline += inv.seconds
            if inv.killed and kill is not None:
                pending_kills.pop(0)
                kill.fired = True
                if kill.event:
                    emu.arm(None)  # type: ignore[union-attr]
                    kill.planned = round(timeline, 3)
                kill.invocation = inv.index
                kill.into_invocation = inv.seconds
                kill.in_flight = jobs_in_flight(Path(inv.log))
                kill.phase = phase_of(inv, kill.in_flight)
                kill.corrupt, kill.tmp_files = scan_files(work, base.outputs)
                kill.locks_left = any((work / ".snakemake" / "locks").glob("*.lock"))
                for problem in kill.corrupt:
                    result.differences.append(f"[corrupt-after-kill at {kill.planned:.2f}s] {problem}")
                counted = job_progress(Path(inv.log))
                if counted is not None:
                    jobs_left = max(0, counted[1] - counted[0])
                segment_start = timeline
                continue
            if inv.outcome == "ok":
                return
            if inv.outcome == "pending":
                continue
            if inv.outcome == "locked":
                result.blocked_reruns += 1
                fired = [k.planned for k in result.kills if k.fired]
                result.differences.append(
                    f"[blocked-rerun] run {inv.index} refused to start: the run killed at "
                    f"{fired[-1] if fired else 0:.2f}s left its lock in .snakemake/locks "
                    f"(Snakemake: 'Directory cannot be locked ... --unlock')"
                )
                if self.options.on_stale_lock == "stop":
                    return
                self.say(
                    f"[{result.corpus}/{result.mode}] trial {result.index}: a STALE LOCK blocked run "
                    f"{inv.index}; recorded as a difference; running `snakemake --unlock` explicitly"
                )
                result.invocations.append(self.invoke(work, mode, env, index, extra=("--unlock",)))
                index += 1
                result.unlocks += 1
                continue
            result.differences.append(
                f"[failed-rerun] run {inv.index} ended {inv.outcome} "
                f"(exit {inv.returncode}); see {inv.log}: {last_error(inv.tail)}"
            )

    def _final_checks(self, work: Path, emu: GeminiEmulator | None, base: Baseline, result: Trial) -> None:
        if not result.invocations or result.invocations[-1].outcome != "ok":
            return
        outputs = final_outputs(work)
        for name in sorted(set(base.outputs) | set(outputs)):
            if name not in outputs:
                result.differences.append(f"[missing-output] {name}")
            elif name not in base.outputs:
                result.differences.append(f"[extra-output] {name}")
            elif outputs[name] != base.outputs[name]:
                result.differences.append(
                    f"[content] {name}: {first_difference(base.outputs[name], outputs[name])}"
                )
        summary = read_summary(work)
        if summary != base.summary:
            mine, theirs = summary or {}, base.summary or {}
            keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            result.differences.append(f"[content] Documents/run-summary.json differs in {keys}")
        rows = csv_rows(outputs.get("Documents/combined-report.csv", ""))
        base_keys = {r["issue_key"] for r in csv_rows(base.outputs.get("Documents/combined-report.csv", ""))}
        lost = base_keys - {r["issue_key"] for r in rows if r.get("status") in GOOD_STATUSES}
        if lost or len(rows) != base.issues:
            result.differences.append(
                f"[lost-issues] {len(lost)} flag(s) without a good answer, {len(rows)} row(s) for "
                f"{base.issues} planned flag(s); e.g. {sorted(lost)[:3]}"
            )
        corrupt, result.tmp_leftovers = scan_files(work, base.outputs)
        result.differences += [f"[corrupt-final] {p}" for p in corrupt]
        if emu is not None and MODES[result.mode].batch:
            creations = emu.batch_creations
            if creations != base.batch_creations:
                result.differences.append(
                    f"[duplicate-job] {creations} batch job(s) created, the uninterrupted run needed "
                    f"{base.batch_creations}"
                )
            names = [emu.job(n)["metadata"].get("displayName", "") for n in emu.job_names()]
            repeated = sorted(n for n, count in Counter(names).items() if count > 1)
            if repeated:
                result.differences.append(f"[duplicate-job] display name(s) created twice: {repeated}")
            known = set(emu.job_names())
            handles = [read_json_or_none(p) or {} for p in (work / "data" / "jobs").glob("*/handle.json")]
            unknown = [h["name"] for h in handles if h.get("name") and h["name"] not in known]
            if unknown:
                result.differences.append(
                    f"[duplicate-job] handle(s) name jobs the service never had: {unknown}"
                )
        if self.options.check_noop:
            env = self.environment(emu)
            dry = self.invoke(work, MODES[result.mode], env, len(result.invocations), extra=("--dry-run",))
            result.invocations.append(dry)
            if "Nothing to be done" not in Path(dry.log).read_text(encoding="utf-8", errors="replace"):
                result.differences.append(
                    f"[not-done] a dry run after the last run still has work: {dry.log}"
                )


# -- helpers ------------------------------------------------------------------


def kill_group(pgid: int) -> None:
    """SIGKILL the whole process group and wait until none of its processes runs any more."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.02)


def group_alive(pgid: int) -> bool:
    """Whether a non-zombie process of the group still exists (zombies cannot write files)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def classify(rc: int | None, text: str, mode: Mode) -> str:
    if rc == 0:
        return "ok"
    if "LockException" in text or "Directory cannot be locked" in text:
        return "locked"
    if mode.batch:
        failed_rules = set(re.findall(r"^Error in rule (\w+):", text, flags=re.M))
        exceptions = set(re.findall(r"^(\w+) in file \"", text, flags=re.M))
        if failed_rules == {"fetch"} and exceptions == {"PendingJob"}:
            return "pending"
    return "failed"


def jobs_in_flight(log: Path) -> dict[str, int]:
    """The rules of the jobs a killed run had started and not finished, from its output."""
    started: dict[str, str] = {}
    rule = ""
    ended_next = False
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line):
            rule, ended_next = match.group(1), False
        elif match := re.match(r"^Error in rule (\w+):", line):
            ended_next = True
        elif match := re.match(r"^\s+jobid: (\d+)", line):
            if ended_next:
                started.pop(match.group(1), None)
                ended_next = False
            else:
                started[match.group(1)] = rule
        elif match := re.search(r"Finished jobid: (\d+)", line):
            started.pop(match.group(1), None)
    return dict(Counter(started.values()))


def job_progress(log: Path) -> tuple[int, int] | None:
    """(jobs finished, jobs planned) of a run, from its output; None before its DAG was built."""
    text = log.read_text(encoding="utf-8", errors="replace")
    planned = re.findall(r"^total\s+(\d+)\s*$", text, flags=re.M)
    if not planned:
        return None
    done = re.findall(r"^(\d+) of (\d+) steps", text, flags=re.M)
    return (int(done[-1][0]) if done else 0), int(planned[0])


def phase_of(inv: Invocation, in_flight: dict[str, int]) -> str:
    if inv.startup is None:
        return "startup"
    if in_flight:
        return "+".join(sorted(in_flight))
    text = Path(inv.log).read_text(encoding="utf-8", errors="replace")
    return "idle" if "Finished jobid" in text else "scheduling"


def last_error(tail: str) -> str:
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if re.match(r"^\w+(Error|Exception)\b", line) or " in file " in line:
            return " | ".join(lines[i : i + 3])[:400]
    return " | ".join(lines[-3:])[:400]


def final_outputs(work: Path) -> dict[str, str]:
    docs = work / "Documents"
    files = sorted(docs.glob("*/document_reports/*.csv"))
    combined = docs / "combined-report.csv"
    if combined.exists():
        files.append(combined)
    return {str(p.relative_to(work)): p.read_text(encoding="utf-8") for p in files}


def read_json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


RUN_TIME_KEYS = ("started_at", "finished_at", "duration_seconds")  # differ between runs by nature
# What the runs sent and spent differs by design after a kill: the resumed run takes from the
# answer cache what the killed one had received (reused, not sent), so only the rest is compared.
SPEND_KEYS = ("spend", "this_run")


def read_summary(work: Path) -> Any:
    summary = read_json_or_none(work / "Documents" / "run-summary.json")
    if isinstance(summary, dict):
        for key in (*RUN_TIME_KEYS, *SPEND_KEYS):
            summary.pop(key, None)
    return summary


def planned_issues(work: Path) -> int:
    plan = json.loads((work / "data" / "plan" / "plan.json").read_text(encoding="utf-8"))
    return sum(int(d["flags"]) for d in plan["documents"])


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def first_difference(expected: str, actual: str) -> str:
    a, b = expected.splitlines(), actual.splitlines()
    for n, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return f"line {n}: expected {x[:120]!r}, got {y[:120]!r}"
    return f"{len(a)} line(s) expected, {len(b)} found"


def check_csv(path: Path, text: str) -> str | None:
    if not text:
        return "empty CSV"
    if not text.endswith("\n"):
        return "CSV does not end with a newline (truncated?)"
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        return f"CSV does not parse: {exc}"
    if not rows or not rows[0]:
        return "CSV has no header"
    width = len(rows[0])
    bad = [n for n, row in enumerate(rows[1:], start=2) if len(row) != width]
    if bad:
        return f"rows {bad[:5]} do not have the header's {width} column(s)"
    if path.parent.name == "document_reports" and rows[0] != DOCUMENT_HEADER:
        return f"unexpected header {rows[0][:4]}..."
    if path.name == "combined-report.csv" and rows[0] != COMBINED_HEADER:
        return f"unexpected header {rows[0][:4]}..."
    return None


def scan_files(work: Path, expected: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Problems with the visible .csv/.json files under Documents/ and data/, and the temp files.

    Every visible JSON must load and every CSV must parse completely with its header; a final
    CSV that exists must already be the uninterrupted run's (merge writes it only once all its
    results exist, so anything else is a partial or stale file).
    """
    problems: list[str] = []
    temps: list[str] = []
    for top in ("Documents", "data"):
        for path in sorted((work / top).rglob("*")):
            if not path.is_file():
                continue
            rel = str(path.relative_to(work))
            if TMP_NAME.match(path.name):
                temps.append(rel)
                continue
            if path.suffix not in (".csv", ".json"):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{rel}: unreadable ({exc})")
                continue
            if path.suffix == ".json":
                try:
                    json.loads(text)
                except ValueError as exc:
                    problems.append(f"{rel}: JSON does not load ({exc}; {len(text)} bytes)")
                continue
            issue = check_csv(path, text)
            if issue:
                problems.append(f"{rel}: {issue}")
            elif expected is not None and rel in expected and text != expected[rel]:
                problems.append(
                    f"{rel}: complete but not the uninterrupted run's content "
                    f"({first_difference(expected[rel], text)})"
                )
    return problems, temps


def kill_plan(rng: random.Random, count: int, per_trial: int) -> list[list[float]]:
    """``count`` fractions stratified over ``[0, 1)`` (one per slice), shuffled into trials.

    Within a trial they are in increasing order: a run that ends before its kill ends the trial,
    so the largest share of the remaining time comes last.
    """
    fractions = [(i + rng.random()) / count for i in range(count)]
    rng.shuffle(fractions)
    return [sorted(fractions[g : g + per_trial]) for g in range(0, count, per_trial)]


def event_plan(rng: random.Random, count: int, base: Baseline) -> list[str]:
    """``count`` kill events: a seeded n-th answer of the calls that matter, lost with the run.

    Sync: a generateContent answer. Batch: alternately a batch creation (the job exists but the
    run never learns its name: the rerun must adopt it, not create another) and a status poll.
    """
    calls = base.endpoint_counts
    if base.mode == "sync":
        choices = [("models.generateContent", calls.get("models.generateContent", 0))]
    elif base.mode == "batch":
        choices = [
            ("models.batchGenerateContent", calls.get("models.batchGenerateContent", 0)),
            ("batches.get", calls.get("batches.get", 0)),
        ]
    else:
        return []
    wanted = Counter(choices[i % len(choices)] for i in range(count))
    events = []
    for (endpoint, total), k in wanted.items():
        picks = rng.sample(range(1, total + 1), min(k, total)) if total else []  # distinct calls
        events += [f"{endpoint}#{n}" for n in sorted(picks)]
    return events


# -- driver -------------------------------------------------------------------


def run(
    corpora: dict[str, Path],
    modes: list[str],
    kills: int,
    seed: int,
    options: Options,
    per_trial: dict[str, int] | None = None,
    parallel: int = 1,
    only_trial: int | None = None,
    kill_at: list[float] | None = None,
    kills_for: dict[str, int] | None = None,
    event_kills: int = 0,
    kill_events: list[str] | None = None,
) -> dict[str, Any]:
    """Run baselines and trials; return the report (``totals.differences`` must be 0).

    ``parallel`` bounds the Snakemake processes running at the same time; modes and trials run
    concurrently up to that bound.
    """
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="crash-harness-"))
    harness = Harness(options, root, parallel)
    harness.say(f"crash harness: seed {seed}, workspaces in {root}")
    report: dict[str, Any] = {
        "seed": seed,
        "modes": modes,
        "kills_per_mode": kills,
        "parallel": parallel,
        "workflow": str(options.workflow),
        "subjects": list(options.subjects),
        "batch_completion": options.batch_completion,
        "reach": options.reach,
        "latency": options.latency,
        "event_kills": event_kills,
        "corpora": {},
    }

    def run_trials(
        corpus: str, documents: Path, mode: Mode, base: Baseline, jobs: list[tuple[int, list[Kill]]]
    ):
        def one(job: tuple[int, list[Kill]]) -> Trial:
            return harness.trial(corpus, documents, mode, base, job[0], str(seed), job[1])

        if parallel <= 1 or len(jobs) <= 1:
            return [one(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return list(pool.map(one, jobs))

    def one_mode(corpus: str, documents: Path, name: str, wanted: int, chain: int) -> dict[str, Any]:
        mode = MODES[name]
        base = harness.baseline(corpus, documents, mode)
        rng = random.Random(f"{seed}/{corpus}/{name}")
        plans = kill_plan(rng, wanted, chain)
        if kill_events:
            jobs = [(i, [Kill(None, event=e)]) for i, e in enumerate(kill_events)] if mode.emulator else []
        elif kill_at:
            jobs = [(0, [Kill(None, planned=t) for t in sorted(kill_at)])]
        else:
            indexes = [only_trial] if only_trial is not None else range(len(plans))
            jobs = [(i, [Kill(round(f, 4)) for f in plans[i]]) for i in indexes if i < len(plans)]
            harness.say(
                f"[{corpus}/{name}] kill plan (seed {seed}; fractions of the remaining run): "
                + "; ".join(f"trial {i}: {[k.fraction for k in ks]}" for i, ks in jobs)
            )
        trials = run_trials(corpus, documents, mode, base, jobs)
        # top up when a run ended before its kill (the machine was faster than the baseline):
        # the new kills are spread over the shortest whole run seen
        next_index = len(plans)
        while (
            not kill_at
            and not kill_events
            and only_trial is None
            and next_index < 2 * len(plans) + wanted
            and sum(t.fired for t in trials) < wanted
        ):
            missing = wanted - sum(t.fired for t in trials)
            whole = [
                sum(i.seconds for i in t.invocations if i.outcome not in ("dry-run", "unlock"))
                for t in trials
                if t.fired == 0 and t.invocations
            ]
            shorter = replace(base, seconds=min([base.seconds, *whole]))
            more = [
                (next_index + i, [Kill(round(0.95 * f[0], 4))])
                for i, f in enumerate(kill_plan(rng, missing, 1))
            ]
            next_index += len(more)
            harness.say(
                f"[{corpus}/{name}] {missing} kill point(s) not reached; more trials: "
                + "; ".join(f"trial {i}: {[k.fraction for k in ks]}" for i, ks in more)
            )
            trials += run_trials(corpus, documents, mode, shorter, more)
        if event_kills and not kill_at and not kill_events and only_trial is None and mode.emulator:
            events = event_plan(random.Random(f"{seed}/{corpus}/{name}/events"), event_kills, base)
            start = next_index
            jobs = [(start + i, [Kill(None, event=e)]) for i, e in enumerate(events)]
            harness.say(
                f"[{corpus}/{name}] event kills: " + "; ".join(f"trial {i}: {k[0].event}" for i, k in jobs)
            )
            trials += run_trials(corpus, documents, mode, base, jobs)
        phases = Counter(k.phase for t in trials for k in t.kills if k.fired)
        return {
            "baseline": _baseline_json(base),
            "trials": [_trial_json(t) for t in trials],
            "kill_points": sum(t.fired - t.events for t in trials),
            "event_kill_points": sum(t.events for t in trials),
            "kill_points_not_reached": sum(len(t.kills) - t.fired for t in trials),
            "phases": dict(phases.most_common()),
            "runs": sum(t.runs for t in trials),
            "differences": sum(len(t.differences) for t in trials) + len(base.problems),
            "blocked_reruns": sum(t.blocked_reruns for t in trials),
            "unlocks": sum(t.unlocks for t in trials),
            "tmp_leftovers": sum(len(t.tmp_leftovers) for t in trials),
            "tmp_seen_after_kills": sum(len(k.tmp_files) for t in trials for k in t.kills),
            "stale_locks_after_kills": sum(k.locks_left for t in trials for k in t.kills),
            "batch_creations": sorted({t.batch_creations for t in trials}),
            "extra_generate_content_calls": sum(
                t.generate_content_calls - base.generate_content_calls for t in trials
            ),
            "seconds": round(sum(t.seconds for t in trials), 1),
        }

    try:
        for corpus, documents in corpora.items():
            wanted = (kills_for or {}).get(corpus, kills)
            chain = max(1, min((per_trial or {}).get(corpus, 1), wanted))
            section: dict[str, Any] = {
                "documents": str(documents),
                "kills_per_mode": wanted,
                "kills_per_trial": chain,
                "modes": {},
            }
            report["corpora"][corpus] = section
            corpus_started = time.monotonic()
            with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(modes)))) as pool:
                futures = {
                    name: pool.submit(one_mode, corpus, documents, name, wanted, chain) for name in modes
                }
                section["modes"] = {name: future.result() for name, future in futures.items()}
            section["seconds"] = round(time.monotonic() - corpus_started, 1)
    finally:
        if not options.keep and not (options.keep_failures and _any_difference(report)):
            shutil.rmtree(root, ignore_errors=True)
    keys = (
        "kill_points",
        "event_kill_points",
        "runs",
        "differences",
        "blocked_reruns",
        "unlocks",
        "tmp_leftovers",
    )
    totals = dict.fromkeys(("trials", *keys), 0)
    for section in report["corpora"].values():
        for stats in section["modes"].values():
            totals["trials"] += len(stats["trials"])
            for key in keys:
                totals[key] += stats[key]
    report["totals"] = totals
    report["seconds"] = round(time.monotonic() - started, 1)
    report["workspaces"] = str(root) if root.exists() else None
    return report


def _any_difference(report: dict[str, Any]) -> bool:
    return any(m["differences"] for c in report["corpora"].values() for m in c["modes"].values())


def _invocation_json(inv: Invocation) -> dict[str, Any]:
    data = asdict(inv)
    if not data["tail"]:
        data.pop("tail")
    return data


def _baseline_json(base: Baseline) -> dict[str, Any]:
    data = asdict(base)
    data.pop("outputs")
    data.pop("summary")
    data["output_files"] = len(base.outputs)
    data["invocations"] = [_invocation_json(i) for i in base.invocations]
    return data


def _trial_json(trial: Trial) -> dict[str, Any]:
    data = asdict(trial)
    data["invocations"] = [_invocation_json(i) for i in trial.invocations]
    data["kill_points"] = trial.fired
    data["event_kill_points"] = trial.events
    data["kill_times"] = trial.kill_times
    data["runs"] = trial.runs
    return data


def format_summary(report: dict[str, Any]) -> str:
    lines = [f"Crash-safety summary (seed {report['seed']}, {report['seconds']:.0f} s)"]
    lines.append(
        f"  {'corpus/mode':<16}{'kills':>6}{'events':>7}{'missed':>7}{'runs':>6}{'diffs':>6}{'blocked':>8}"
        f"{'tmp left':>9}{'jobs':>6}{'base jobs':>10}{'secs':>7}  kill phases"
    )
    for corpus, section in report["corpora"].items():
        for mode, stats in section["modes"].items():
            jobs = ",".join(map(str, stats["batch_creations"])) or "-"
            phases = ", ".join(f"{k} {v}" for k, v in stats["phases"].items())
            lines.append(
                f"  {corpus + '/' + mode:<16}{stats['kill_points']:>6}{stats['event_kill_points']:>7}"
                f"{stats['kill_points_not_reached']:>7}"
                f"{stats['runs']:>6}{stats['differences']:>6}{stats['blocked_reruns']:>8}"
                f"{stats['tmp_leftovers']:>9}{jobs:>6}{stats['baseline']['batch_creations']:>10}"
                f"{stats['seconds']:>7.0f}  {phases}"
            )
    t = report["totals"]
    lines.append(
        f"Total: {t['kill_points']} random kill point(s) and {t['event_kill_points']} at an event in "
        f"{t['trials']} trial(s), {t['runs']} run(s), "
        f"{t['differences']} difference(s), {t['blocked_reruns']} rerun(s) blocked by a stale lock, "
        f"{t['tmp_leftovers']} temp file(s) left over"
    )
    for corpus, section in report["corpora"].items():
        for mode, stats in section["modes"].items():
            for problem in stats["baseline"]["problems"]:
                lines.append(f"  {corpus}/{mode} baseline: {problem}")
            for trial in stats["trials"]:
                for diff in trial["differences"]:
                    lines.append(
                        f"  {corpus}/{mode} trial {trial['index']} (seed {trial['seed']}, kills at "
                        f"{trial['kill_times']}): {diff}"
                    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus",
        choices=("sample", "shared", "all"),
        default="all",
        help="the bundled sample, a temp copy of the reference corpus, or both (default)",
    )
    parser.add_argument("--modes", default="offline,sync,batch", help="comma-separated: offline,sync,batch")
    parser.add_argument("--kills", type=int, default=20, help="kill points per mode (default 20)")
    parser.add_argument(
        "--shared-kills", type=int, default=None, help="kill points per mode, reference corpus"
    )
    parser.add_argument("--kills-per-trial", type=int, default=1, help="kills in a row per trial (sample)")
    parser.add_argument(
        "--shared-kills-per-trial",
        type=int,
        default=20,
        help="kills in a row per trial on the reference corpus, where every trial is a long full run",
    )
    parser.add_argument(
        "--event-kills",
        type=int,
        default=4,
        help="more trials per gemini mode killed right after the emulator served a seeded n-th "
        "generateContent / batch creation / status poll, before its answer arrives (default 4)",
    )
    parser.add_argument(
        "--kill-event",
        action="append",
        default=None,
        help="replay: one trial per event, e.g. models.batchGenerateContent#2; repeatable",
    )
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    parser.add_argument("--parallel", type=int, default=1, help="Snakemake runs at the same time")
    parser.add_argument("--only-trial", type=int, default=None, help="replay one trial of the seeded plan")
    parser.add_argument(
        "--kill-at",
        type=float,
        action="append",
        default=None,
        help="replay: one trial killed at these moments (s) of its timeline; repeatable",
    )
    parser.add_argument("--subjects", default="", help="comma-separated subject filter (config subjects)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--workflow",
        type=Path,
        default=REPO,
        help="folder with the Snakefile (default: this repository; e.g. a patched copy)",
    )
    parser.add_argument(
        "--on-stale-lock",
        choices=("unlock", "stop"),
        default="unlock",
        help="after recording a rerun blocked by a stale lock: run --unlock visibly, or end the trial",
    )
    parser.add_argument(
        "--batch-completion",
        choices=("per_poll", "first_poll"),
        default="per_poll",
        help="emulated batch jobs finish after PENDING and RUNNING polls, or at the first poll",
    )
    parser.add_argument("--reach", type=float, default=1.0, help="scale of the kill moments (0-1]")
    parser.add_argument(
        "--latency", type=float, default=0.1, help="emulator seconds per generateContent call (default 0.1)"
    )
    parser.add_argument("--no-noop-check", action="store_true", help="skip the final dry run of each trial")
    parser.add_argument("--keep", action="store_true", help="keep every workspace")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="JSON report path (default: stress-report.json in a new temp folder)",
    )
    args = parser.parse_args(argv)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    corpora: dict[str, Path] = {}
    if args.corpus in ("sample", "all"):
        corpora["sample"] = SAMPLE_DOCUMENTS
    if args.corpus in ("shared", "all"):
        if (SHARED_DOCUMENTS / "language-check-report.csv").exists():
            corpora["shared"] = SHARED_DOCUMENTS
        else:
            print(f"reference corpus not found at {SHARED_DOCUMENTS}: skipping that part", flush=True)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {sorted(MODES)}")
    options = Options(
        workflow=args.workflow.resolve(),
        cores=args.cores,
        subjects=tuple(s.strip() for s in args.subjects.split(",") if s.strip()),
        on_stale_lock=args.on_stale_lock,
        check_noop=not args.no_noop_check,
        keep=args.keep,
        batch_completion=args.batch_completion,
        reach=args.reach,
        latency=args.latency,
    )
    report = run(
        corpora,
        modes,
        args.kills,
        seed,
        options,
        per_trial={"sample": args.kills_per_trial, "shared": args.shared_kills_per_trial},
        parallel=args.parallel,
        only_trial=args.only_trial,
        kill_at=args.kill_at,
        kills_for={"shared": args.shared_kills if args.shared_kills is not None else args.kills},
        event_kills=args.event_kills,
        kill_events=args.kill_event,
    )
    path = args.report or Path(tempfile.mkdtemp(prefix="crash-stress-")) / "stress-report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(format_summary(report))
    print(f"Report: {path}")
    replay = list(argv if argv is not None else sys.argv[1:])
    for flag in ("--seed", "--report"):
        while flag in replay:
            at = replay.index(flag)
            del replay[at : at + 2]
    print(
        f"Replay: python tests/support/crash_harness.py {shlex.join(replay)} --seed {seed} "
        f"[--modes M --only-trial N]"
    )
    return 0 if report["totals"]["differences"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
