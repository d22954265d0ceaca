"""The crash harness's driver: baselines and trials per corpus and mode (in parallel when asked),
the report and its summary."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from support.crash_harness.checks import event_plan, kill_plan
from support.crash_harness.harness import Harness
from support.crash_harness.records import MODES, Baseline, Invocation, Kill, Mode, Options, Trial


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
