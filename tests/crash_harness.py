"""Crash-safety harness: SIGKILL the whole Snakemake run at random moments, rerun, compare.

For each corpus (the bundled sample, and a temporary copy of the reference corpus when present)
and each mode (``offline``; ``sync`` and ``batch`` with the gemini provider against the loopback
emulator), the harness

1. runs the pipeline once without interruption (the *baseline*): its final CSVs, the number of
   remote batch jobs it created and its duration ``D``;
2. runs *trials*: a fresh workspace, a fresh emulator, Snakemake started in its own session
   (``start_new_session=True``) and its whole process group killed with ``SIGKILL`` at seeded
   random moments on the trial's timeline (stratified over ``[0, D]``, so the kill points cover
   the whole run); after every kill it checks that no partially written file is visible under
   ``Documents/`` or ``data/``; then it reruns until the pipeline succeeds;
3. compares each trial's final CSVs (every ``Documents/*/document_reports/*.csv`` and
   ``Documents/combined-report.csv``, plus ``run-summary.json``) with the baseline's, checks that
   no issue is lost and that the emulator created exactly as many batch jobs as the baseline run.

Anything else is a *difference*: a rerun blocked by a stale ``.snakemake/locks`` (recorded, then
``--unlock`` is run explicitly and visibly so that the other checks still run; ``--on-stale-lock
stop`` ends the trial instead), a failed rerun, a run that does not converge, a corrupt file.
Hidden temporary files (``.<name>.<random>.tmp`` from ``atomic_write_bytes``) are not outputs:
they are counted (``tmp_leftovers``) but not parsed.

The emulator stays in this process, outside the killed process group; batch jobs complete on
their own (``batch_mode="per_poll"``), so reruns converge. Batch-mode runs use ``--keep-going``.

Replay a failure with the printed seed, e.g.::

    python tests/crash_harness.py --corpus sample --modes batch --seed 1234 --only-trial 7
    python tests/crash_harness.py --corpus sample --modes sync --kill-at 6.25 --kill-at 11.5

(``--kill-at`` runs one trial with exactly these kill moments, in seconds on the trial's
timeline). Timings on a loaded machine vary, so a replay hits the same phase of the run, not
necessarily the same instruction.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from gemini_emulator import GeminiEmulator  # noqa: E402

SAMPLE_DOCUMENTS = REPO / "Documents"
SHARED_DOCUMENTS = REPO.parent / "shared" / "corpus" / "Documents"
OUTPUT_NAMES = ("document_reports", "combined-report.csv", "run-summary.json")
ENV_DROP = {
    "LLM_PRIMARY",
    "LLM_CATEGORISER_BATCH_SIZE",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
}
FAKE_KEY = "crash-harness-fake-key"
TMP_NAME = re.compile(r"^\..+\.tmp$")
DOCUMENT_HEADER = (
    "issue_id,page_number,issue,highlighted_context,pass_code,error_category,confidence_score,reasoning,"
    "rule_id,type,message,suggestions,issue_key,provider,model,status,error"
).split(",")
COMBINED_HEADER = ["subject", "filename", *DOCUMENT_HEADER]
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
    keep: bool = False
    verbose: bool = True


@dataclass
class Invocation:
    index: int
    kill_after: float | None
    killed: bool
    returncode: int | None
    outcome: str  # ok | killed | pending | locked | failed | unlock | timeout
    seconds: float
    log: str
    tail: str = ""


@dataclass
class Kill:
    at: float  # planned moment on the trial's timeline (s)
    fired: bool = False
    invocation: int | None = None
    into_invocation: float | None = None  # seconds after that invocation started
    corrupt: list[str] = field(default_factory=list)
    tmp_files: list[str] = field(default_factory=list)
    locks_left: bool = False


@dataclass
class Baseline:
    corpus: str
    mode: str
    runs: int
    seconds: float
    restart_seconds: float
    outputs: dict[str, str]
    summary: Any
    issues: int
    batch_creations: int
    generate_content_calls: int
    invocations: list[Invocation]
    problems: list[str]


@dataclass
class Trial:
    corpus: str
    mode: str
    index: int
    seed: str
    kill_times: list[float]
    kills: list[Kill] = field(default_factory=list)
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
        return sum(i.outcome != "unlock" for i in self.invocations)


class Harness:
    def __init__(self, options: Options, root: Path) -> None:
        self.options = options
        self.root = root
        self._print_lock = threading.Lock()
        self._counter = 0

    # -- output --------------------------------------------------------------

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
        shutil.copytree(documents, dest / "Documents", ignore=shutil.ignore_patterns(*OUTPUT_NAMES))
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
        config = list(mode.config)
        if self.options.subjects:
            config.append(f"subjects=[{','.join(self.options.subjects)}]")
        return [*cmd, "--config", *config]

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
    ) -> Invocation:
        log = work / "logs" / f"run-{index:02d}.log"
        started = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                self.command(work, mode, *extra),
                cwd=work,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            killed = False
            outcome = ""
            try:
                rc: int | None = proc.wait(
                    timeout=self.options.run_timeout if kill_after is None else max(0.0, kill_after)
                )
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                proc.wait()
                rc = None
                killed = kill_after is not None
                outcome = "killed" if killed else "timeout"
        seconds = time.monotonic() - started
        text = log.read_text(encoding="utf-8", errors="replace")
        if not outcome:
            outcome = classify(rc, text, mode)
        if "--unlock" in extra:
            outcome = "unlock"
        return Invocation(index, kill_after, killed, rc, outcome, round(seconds, 3), str(log),
                          "" if outcome in ("ok", "killed", "unlock") else text[-3000:])

    # -- baseline ------------------------------------------------------------

    def baseline(self, corpus: str, documents: Path, mode: Mode) -> Baseline:
        work = self.workspace(documents, f"{corpus}-{mode.name}-baseline")
        emu = GeminiEmulator(batch_mode="per_poll").start() if mode.emulator else None
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
            seconds = sum(i.seconds for i in invocations)
            started = time.monotonic()
            dry = self.invoke(work, mode, env, len(invocations), extra=("--dry-run",))
            restart = time.monotonic() - started
            if "Nothing to be done" not in Path(dry.log).read_text(encoding="utf-8", errors="replace"):
                problems.append("a dry run after the uninterrupted run still has work to do")
            outputs = final_outputs(work)
            issues = planned_issues(work)
            rows = csv_rows(outputs.get("Documents/combined-report.csv", ""))
            bad = [r for r in rows if r.get("status") not in GOOD_STATUSES]
            if len(rows) != issues or bad:
                problems.append(f"baseline combined report has {len(rows)} row(s) for {issues} planned "
                                f"flag(s), {len(bad)} not ok")
            problems += [f"baseline: {p}" for p in scan_files(work)[0]]
            stats = emu.stats() if emu else {}
            base = Baseline(
                corpus=corpus,
                mode=mode.name,
                runs=len(invocations),
                seconds=round(seconds, 3),
                restart_seconds=round(restart, 3),
                outputs=outputs,
                summary=read_summary(work),
                issues=issues,
                batch_creations=int(stats.get("batch_creations", 0)),
                generate_content_calls=int(stats.get("generate_content_calls", 0)),
                invocations=invocations,
                problems=problems,
            )
        finally:
            if emu is not None:
                emu.stop()
        if not self.options.keep:
            shutil.rmtree(work, ignore_errors=True)
        self.say(
            f"[{corpus}/{mode.name}] baseline: {base.runs} run(s), {base.seconds:.1f} s, "
            f"{len(base.outputs)} output file(s), {base.issues} flag(s), "
            f"{base.batch_creations} batch job(s), restart {base.restart_seconds:.1f} s"
        )
        return base

    # -- trials ----------------------------------------------------------------

    def trial(self, corpus: str, documents: Path, mode: Mode, base: Baseline, index: int, seed: str,
              kill_times: list[float]) -> Trial:
        result = Trial(corpus, mode.name, index, seed, [round(t, 3) for t in kill_times])
        result.kills = [Kill(round(t, 3)) for t in sorted(kill_times)]
        work = self.workspace(documents, f"{corpus}-{mode.name}-t{index:02d}")
        result.workspace = str(work)
        emu = GeminiEmulator(batch_mode="per_poll").start() if mode.emulator else None
        started = time.monotonic()
        try:
            env = self.environment(emu)
            self._run_trial(work, mode, env, base, result)
            self._final_checks(work, emu, base, result)
        finally:
            if emu is not None:
                stats = emu.stats()
                result.batch_creations = int(stats["batch_creations"])
                result.generate_content_calls = int(stats["generate_content_calls"])
                emu.stop()
        result.seconds = round(time.monotonic() - started, 3)
        times = ", ".join(
            f"{k.at:.2f}s{'' if k.fired else ' (not reached)'}" for k in result.kills
        )
        verdict = "OK" if not result.differences else f"{len(result.differences)} DIFFERENCE(S)"
        self.say(
            f"[{corpus}/{mode.name}] trial {index} seed {seed}: kills at {times}; "
            f"{result.runs} run(s), {result.batch_creations} batch job(s), "
            f"{len(result.tmp_leftovers)} temp leftover(s): {verdict}"
        )
        for diff in result.differences:
            self.say(f"    - {diff}")
        if result.differences:
            self.say(f"    workspace kept: {work}")
        elif not self.options.keep:
            shutil.rmtree(work, ignore_errors=True)
        return result

    def _run_trial(self, work: Path, mode: Mode, env: dict[str, str], base: Baseline, result: Trial) -> None:
        timeline = 0.0
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
            kill_after = None if kill is None else max(0.0, kill.at - timeline)
            inv = self.invoke(work, mode, env, index, kill_after)
            index += 1
            result.invocations.append(inv)
            timeline += inv.seconds
            if inv.killed and kill is not None:
                pending_kills.pop(0)
                kill.fired = True
                kill.invocation = inv.index
                kill.into_invocation = round(inv.seconds, 3)
                kill.corrupt, kill.tmp_files = scan_files(work, base.outputs)
                kill.locks_left = any((work / ".snakemake" / "locks").glob("*.lock"))
                for problem in kill.corrupt:
                    result.differences.append(f"[corrupt-after-kill at {kill.at:.2f}s] {problem}")
                continue
            if inv.outcome == "ok":
                return
            if inv.outcome == "pending":
                continue
            if inv.outcome == "locked":
                result.blocked_reruns += 1
                result.differences.append(
                    f"[blocked-rerun] run {inv.index} refused to start: stale lock left in "
                    f".snakemake/locks by the run killed at {timeline_of_last_kill(result):.2f}s "
                    f"(Snakemake: 'Directory cannot be locked ... --unlock')"
                )
                if self.options.on_stale_lock == "stop":
                    return
                self.say(f"[{result.corpus}/{result.mode}] trial {result.index}: STALE LOCK blocked run "
                         f"{inv.index}; recorded as a difference, running `snakemake --unlock` explicitly")
                unlock = self.invoke(work, mode, env, index, extra=("--unlock",))
                index += 1
                result.invocations.append(unlock)
                result.unlocks += 1
                continue
            result.differences.append(f"[failed-rerun] run {inv.index} ended {inv.outcome} "
                                      f"(exit {inv.returncode}); see {inv.log}: {last_error(inv.tail)}")

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
                result.differences.append(f"[content] {name}: {first_difference(base.outputs[name], outputs[name])}")
        summary = read_summary(work)
        if summary != base.summary:
            keys = sorted(k for k in set(summary or {}) | set(base.summary or {})
                          if (summary or {}).get(k) != (base.summary or {}).get(k))
            result.differences.append(f"[content] Documents/run-summary.json differs in {keys}")
        rows = csv_rows(outputs.get("Documents/combined-report.csv", ""))
        base_keys = {r["issue_key"] for r in csv_rows(base.outputs.get("Documents/combined-report.csv", ""))}
        keys = {r["issue_key"] for r in rows if r.get("status") in GOOD_STATUSES}
        lost = base_keys - keys
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
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                result.differences.append(f"[duplicate-job] display name(s) created twice: {repeated}")
            handles = [json.loads(p.read_text(encoding="utf-8")) for p in (work / "data" / "jobs").glob("*/handle.json")]
            unknown = [h["name"] for h in handles if h.get("name") and h["name"] not in emu.job_names()]
            if unknown:
                result.differences.append(f"[duplicate-job] handle(s) naming jobs the service never had: {unknown}")
        if self.options.check_noop:
            env = self.environment(emu)
            dry = self.invoke(work, MODES[result.mode], env, len(result.invocations) + 1, extra=("--dry-run",))
            if "Nothing to be done" not in Path(dry.log).read_text(encoding="utf-8", errors="replace"):
                result.differences.append(f"[not-done] a dry run after the final run still has work to do; see {dry.log}")


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


def last_error(tail: str) -> str:
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if re.match(r"^\w+(Error|Exception)\b", line) or " in file " in line:
            return " | ".join(lines[i : i + 3])[:400]
    return " | ".join(lines[-3:])[:400]


def timeline_of_last_kill(result: Trial) -> float:
    fired = [k.at for k in result.kills if k.fired]
    return fired[-1] if fired else 0.0


def final_outputs(work: Path) -> dict[str, str]:
    docs = work / "Documents"
    files = sorted(docs.glob("*/document_reports/*.csv"))
    combined = docs / "combined-report.csv"
    if combined.exists():
        files.append(combined)
    return {str(p.relative_to(work)): p.read_text(encoding="utf-8") for p in files}


def read_summary(work: Path) -> Any:
    try:
        return json.loads((work / "Documents" / "run-summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def planned_issues(work: Path) -> int:
    plan = json.loads((work / "data" / "plan" / "plan.json").read_text(encoding="utf-8"))
    return sum(int(d["issues"]) for d in plan["documents"])


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
                problems.append(f"{rel}: complete but not the uninterrupted run's content "
                                f"({first_difference(expected[rel], text)})")
    return problems, temps


def kill_schedule(rng: random.Random, count: int, span: float, per_trial: int) -> list[list[float]]:
    """``count`` kill moments stratified over ``[0, span]`` (one per slice), grouped per trial.

    With ``per_trial`` > 1 a trial is killed several times in a row; its timeline then also holds
    the restarts, so the span is stretched by the restart cost by the caller.
    """
    moments = [span * (i + rng.random()) / count for i in range(count)]
    order = list(range(count))
    rng.shuffle(order)
    groups = [sorted(moments[i] for i in order[g : g + per_trial]) for g in range(0, count, per_trial)]
    return groups


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
) -> dict[str, Any]:
    """Run baselines and trials; return the report (``totals.differences`` must be 0).

    ``parallel`` bounds the Snakemake processes running at the same time; modes and trials run
    concurrently up to that bound.
    """
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="crash-harness-"))
    harness = Harness(options, root, parallel)
    harness.say(f"crash harness: seed {seed}, workspaces in {root}")
    report: dict[str, Any] = {"seed": seed, "modes": modes, "kills_per_mode": kills, "parallel": parallel,
                              "workflow": str(options.workflow), "corpora": {}}

    def one_mode(corpus: str, documents: Path, name: str, wanted: int, chain: int) -> dict[str, Any]:
        mode = MODES[name]
        base = harness.baseline(corpus, documents, mode, measure_restart=chain > 1 and not kill_at)
        rng = random.Random(f"{seed}/{corpus}/{name}")
        if kill_at:
            plans = [sorted(kill_at)]
        else:
            span = base.seconds + (chain - 1) * base.restart_seconds
            plans = kill_schedule(rng, wanted, span, chain)
        harness.say(f"[{corpus}/{name}] kill plan (seed {seed}): "
                    + "; ".join(f"trial {i}: {[round(t, 2) for t in p]}" for i, p in enumerate(plans)))
        indexes = [only_trial] if only_trial is not None else list(range(len(plans)))
        jobs = [(i, plans[i]) for i in indexes if i < len(plans)]
        trials = _run_trials(harness, corpus, documents, mode, base, seed, jobs, parallel)
        # top up when the machine ran faster than the baseline and a kill came after the end
        next_index = len(plans)
        while (not kill_at and only_trial is None and next_index < 3 * len(plans) + wanted
               and sum(t.fired for t in trials) < wanted):
            missing = wanted - sum(t.fired for t in trials)
            more = kill_schedule(rng, missing, base.seconds * 0.9, 1)
            jobs = [(next_index + i, p) for i, p in enumerate(more)]
            next_index += len(more)
            harness.say(f"[{corpus}/{name}] {missing} kill point(s) not reached; more trials: "
                        + "; ".join(f"trial {i}: {[round(t, 2) for t in p]}" for i, p in jobs))
            trials += _run_trials(harness, corpus, documents, mode, base, seed, jobs, parallel)
        return {
            "baseline": _baseline_json(base),
            "trials": [_trial_json(t) for t in trials],
            "kill_points": sum(t.fired for t in trials),
            "kill_points_not_reached": sum(len(t.kills) - t.fired for t in trials),
            "runs": sum(t.runs for t in trials),
            "differences": sum(len(t.differences) for t in trials) + len(base.problems),
            "blocked_reruns": sum(t.blocked_reruns for t in trials),
            "unlocks": sum(t.unlocks for t in trials),
            "tmp_leftovers": sum(len(t.tmp_leftovers) for t in trials),
            "tmp_seen_after_kills": sum(len(k.tmp_files) for t in trials for k in t.kills),
            "stale_locks_after_kills": sum(k.locks_left for t in trials for k in t.kills),
            "extra_generate_content_calls": sum(
                t.generate_content_calls - base.generate_content_calls for t in trials
            ),
            "seconds": round(sum(t.seconds for t in trials), 1),
        }

    try:
        for corpus, documents in corpora.items():
            wanted = (kills_for or {}).get(corpus, kills)
            chain = max(1, min((per_trial or {}).get(corpus, 1), wanted))
            section: dict[str, Any] = {"documents": str(documents), "kills_per_mode": wanted,
                                       "kills_per_trial": chain, "modes": {}}
            report["corpora"][corpus] = section
            corpus_started = time.monotonic()
            with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(modes)))) as pool:
                futures = {name: pool.submit(one_mode, corpus, documents, name, wanted, chain) for name in modes}
                section["modes"] = {name: future.result() for name, future in futures.items()}
            section["seconds"] = round(time.monotonic() - corpus_started, 1)
    finally:
        if not options.keep and not _any_difference(report):
            shutil.rmtree(root, ignore_errors=True)
    totals = {"kill_points": 0, "runs": 0, "differences": 0, "blocked_reruns": 0, "unlocks": 0,
              "tmp_leftovers": 0, "trials": 0}
    for section in report["corpora"].values():
        for stats in section["modes"].values():
            for key in totals:
                totals[key] += len(stats["trials"]) if key == "trials" else stats[key]
    report["totals"] = totals
    report["seconds"] = round(time.monotonic() - started, 1)
    report["workspaces"] = str(root) if root.exists() else None
    return report


def _run_trials(harness: Harness, corpus: str, documents: Path, mode: Mode, base: Baseline, seed: int,
                jobs: list[tuple[int, list[float]]], parallel: int) -> list[Trial]:
    def one(job: tuple[int, list[float]]) -> Trial:
        index, times = job
        return harness.trial(corpus, documents, mode, base, index, str(seed), times)

    if parallel <= 1:
        return [one(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, jobs))


def _any_difference(report: dict[str, Any]) -> bool:
    return any(m["differences"] for c in report["corpora"].values() for m in c["modes"].values())


def _baseline_json(base: Baseline) -> dict[str, Any]:
    data = asdict(base)
    data.pop("outputs")
    data.pop("summary")
    data["output_files"] = len(base.outputs)
    data["invocations"] = [_invocation_json(i) for i in base.invocations]
    return data


def _invocation_json(inv: Invocation) -> dict[str, Any]:
    data = asdict(inv)
    if not data["tail"]:
        data.pop("tail")
    return data


def _trial_json(trial: Trial) -> dict[str, Any]:
    data = asdict(trial)
    data["invocations"] = [_invocation_json(i) for i in trial.invocations]
    data["kill_points"] = trial.fired
    data["runs"] = trial.runs
    return data


def format_summary(report: dict[str, Any]) -> str:
    lines = [f"Crash-safety summary (seed {report['seed']}, {report['seconds']:.0f} s)"]
    lines.append(f"  {'corpus/mode':<18}{'kills':>7}{'missed':>8}{'runs':>6}{'diffs':>7}{'blocked':>9}"
                 f"{'tmp left':>10}{'jobs':>6}{'base jobs':>11}{'secs':>7}")
    for corpus, section in report["corpora"].items():
        for mode, stats in section["modes"].items():
            creations = sorted({t["batch_creations"] for t in stats["trials"]})
            lines.append(
                f"  {corpus + '/' + mode:<18}{stats['kill_points']:>7}{stats['kill_points_not_reached']:>8}"
                f"{stats['runs']:>6}{stats['differences']:>7}{stats['blocked_reruns']:>9}"
                f"{stats['tmp_leftovers']:>10}{','.join(map(str, creations)) or '-':>6}"
                f"{stats['baseline']['batch_creations']:>11}{stats['seconds']:>7.0f}"
            )
    t = report["totals"]
    lines.append(
        f"Total: {t['kill_points']} kill point(s) in {t['trials']} trial(s), {t['runs']} run(s), "
        f"{t['differences']} difference(s), {t['blocked_reruns']} rerun(s) blocked by a stale lock, "
        f"{t['tmp_leftovers']} temp file(s) left over"
    )
    for corpus, section in report["corpora"].items():
        for mode, stats in section["modes"].items():
            for problem in stats["baseline"]["problems"]:
                lines.append(f"  {corpus}/{mode} baseline: {problem}")
            for trial in stats["trials"]:
                for diff in trial["differences"]:
                    lines.append(f"  {corpus}/{mode} trial {trial['index']} (seed {trial['seed']}, kills at "
                                 f"{trial['kill_times']}): {diff}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=("sample", "shared", "all"), default="all",
                        help="the bundled sample, the reference corpus (temp copy), or both")
    parser.add_argument("--modes", default="offline,sync,batch", help="comma-separated: offline,sync,batch")
    parser.add_argument("--kills", type=int, default=20, help="kill points per mode (sample corpus)")
    parser.add_argument("--shared-kills", type=int, default=None, help="kill points per mode (reference corpus)")
    parser.add_argument("--kills-per-trial", type=int, default=1,
                        help="kills in a row in one trial (sample corpus)")
    parser.add_argument("--shared-kills-per-trial", type=int, default=5,
                        help="kills in a row in one trial (reference corpus; each trial is a full run)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=1, help="trials run at the same time")
    parser.add_argument("--only-trial", type=int, default=None, help="replay one trial of the seeded plan")
    parser.add_argument("--kill-at", type=float, action="append", default=None,
                        help="replay: kill at these moments (s) of one trial; repeatable")
    parser.add_argument("--subjects", default="", help="comma-separated subject filter (config subjects)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workflow", type=Path, default=REPO,
                        help="folder with the Snakefile (e.g. a patched copy of the repository)")
    parser.add_argument("--on-stale-lock", choices=("unlock", "stop"), default="unlock",
                        help="after recording a rerun blocked by a stale lock: run --unlock, or end the trial")
    parser.add_argument("--no-noop-check", action="store_true", help="skip the final dry run of each trial")
    parser.add_argument("--keep", action="store_true", help="keep every workspace")
    parser.add_argument("--report", type=Path, default=None,
                        help="JSON report path (default: stress-report.json in a new temp folder)")
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
    )
    path = args.report or Path(tempfile.mkdtemp(prefix="crash-stress-")) / "stress-report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(format_summary(report))
    print(f"Report: {path}")
    print(f"Replay: python tests/crash_harness.py --seed {seed} --corpus {args.corpus} --modes {args.modes} "
          f"--kills {args.kills} [--only-trial N]")
    return 0 if report["totals"]["differences"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
