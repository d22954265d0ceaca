"""One baseline run and one trial of the crash harness: workspaces, commands, environment,
running Snakemake in its own session and killing its process group, and the final checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from support.crash_harness.checks import (
    classify,
    csv_rows,
    final_outputs,
    first_difference,
    job_progress,
    jobs_in_flight,
    kill_group,
    last_error,
    phase_of,
    planned_issues,
    read_json_or_none,
    read_summary,
    scan_files,
)
from support.crash_harness.emulator import KillingEmulator
from support.crash_harness.records import (
    DAG_MARKER,
    ENV_DROP,
    FAKE_KEY,
    GOOD_STATUSES,
    MODES,
    OUTPUT_NAMES,
    VIEW_NAMES,
    Baseline,
    Invocation,
    Kill,
    Mode,
    Options,
    Trial,
)
from support.emulators.gemini import GeminiEmulator


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
