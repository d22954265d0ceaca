#!/usr/bin/env python
"""Where a rate-limited run's time goes: the ``limit`` benchmark's run, traced from the API's side.

Usage: ``python benchmarks/trace_limit.py [--batches 150] [--rpm 240] [--window 15]
[--latency 0.5] [--per-item 0.05] [--json PATH] [-- <extra snakemake arguments>]``.

It runs the README's default command (``snakemake --cores 2 --config provider=gemini``) on the
same subset of ``../shared/corpus`` as ``run_benchmarks.py --only limit``, against the loopback
Gemini emulator started in this process, and records every ``generateContent`` call as the API
sees it (accepted or answered 429, and when each accepted one was answered), plus when each
``categorise`` job started and ended (from its log). It prints the starts per window of the
API's limit, the seconds in which the API had room for a request while none was sent (and what
the run was doing then), and the throughput the benchmark reports.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

from bench_corpus import master_copy, new_workdir, subset_corpus  # noqa: E402
from bench_sections import GEMINI, Context  # noqa: E402
from bench_support import FAKE_KEY, base_env, snakemake  # noqa: E402
from support.emulators.gemini.emulator import GeminiEmulator  # noqa: E402

LINE_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


class TracedEmulator(GeminiEmulator):
    """The emulator unchanged, with a record of every generateContent call's fate."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[float, str]] = []  # (time.monotonic(), "ok" | "429")

    def _check_rate(self, model: str) -> None:
        now = time.monotonic()
        try:
            super()._check_rate(model)
        except Exception:
            self.calls.append((now, "429"))
            raise
        self.calls.append((now, "ok"))


def job_spans(workdir: Path, offset: float) -> list[tuple[str, float, float]]:
    """(job, first log line, last log line) of every categorise job, in seconds since t0."""
    spans = []
    for log in sorted((workdir / "data" / "logs").rglob("*.log")):
        if "categorise" not in str(log):
            continue
        stamps = []
        for line in log.read_text(encoding="utf-8").splitlines():
            match = LINE_TIME.match(line)
            if match:
                stamps.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
        if stamps:
            spans.append((log.stem, stamps[0] - offset, stamps[-1] - offset))
    return sorted(spans, key=lambda s: s[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--rpm", type=int, default=240)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--per-item", type=float, default=0.05)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="copy the run's job logs here")
    parser.add_argument("extra", nargs="*", help="more snakemake arguments (after --)")
    args = parser.parse_args()
    per_window = max(1, round(args.rpm * args.window / 60))
    with tempfile.TemporaryDirectory(prefix="trace-limit-") as scratch:
        root = Path(scratch)
        ns = argparse.Namespace(quick=True, reps=1, wait_quiet=0, keep=False)
        ctx = Context(ns, None, root)
        ctx.master = master_copy(args.corpus, root)
        from bench_sections import _subset_subjects

        subjects, batches, issues = _subset_subjects(ctx, args.batches)
        documents = subset_corpus(ctx.master, subjects, root, "limit-subset")
        wd = new_workdir(documents, root / "work" / "trace")
        print(f"subset {', '.join(subjects)}: {batches} batches, {issues} flags")
        print(f"API: {per_window} requests per {args.window:g} s")
        emu = TracedEmulator(
            latency=args.latency,
            latency_per_item=args.per_item,
            requests_per_minute=per_window,
            rate_window=args.window,
            api_keys=[FAKE_KEY],
        )
        with emu:
            env = base_env({"GOOGLE_GEMINI_BASE_URL": emu.url, "GEMINI_API_KEY": FAKE_KEY})
            wall0, mono0 = time.time(), time.monotonic()
            run = snakemake(wd, "trace", [*GEMINI, *args.extra], env, logs=root / "logs").as_dict()
            answered = [t - mono0 for t in emu.answered_at()]
            calls = [(t - mono0, status) for t, status in emu.calls]
        spans = job_spans(wd, wall0)
        if args.logs:
            import shutil

            shutil.copytree(wd / "data" / "logs", args.logs, dirs_exist_ok=True)
            shutil.copytree(root / "logs", args.logs / "snakemake", dirs_exist_ok=True)
    report(args, per_window, calls, answered, spans, run)
    if args.json:
        args.json.write_text(json.dumps({"calls": calls, "answered": answered, "jobs": spans, "run": run}))
    return 0


def report(
    args: argparse.Namespace,
    per_window: int,
    calls: list[tuple[float, str]],
    answered: list[float],
    spans: list[tuple[str, float, float]],
    run: dict[str, Any],
) -> None:
    accepted = [t for t, s in calls if s == "ok"]
    refused = [t for t, s in calls if s == "429"]
    t0 = accepted[0] if accepted else 0.0
    print(f"run: exit {run.get('rc')}, {run.get('wall', 0):.1f} s wall; first call at {t0:.1f} s")
    print(f"calls {len(calls)}: accepted {len(accepted)}, 429 {len(refused)}")
    print("jobs (start-end s after the first call):")
    for name, start, end in spans:
        print(f"  {name:40s} {start - t0:6.1f} {end - t0:6.1f}")
    # seconds the API had a free slot while nothing was accepted (after t0, up to the last call)
    idle = 0.0
    step = 0.05
    t = t0
    last = accepted[-1] if accepted else t0
    while t < last:
        in_window = sum(1 for a in accepted if t - args.window < a <= t)
        sent_now = any(t <= a < t + step for a in accepted)
        if in_window < per_window and not sent_now:
            idle += step
        t += step
    print(f"API had room but got no request: {idle:.1f} s of {last - t0:.1f} s")
    print("per second: accepted / 429 / jobs running")
    for second in range(int(last - t0) + 2):
        lo, hi = t0 + second, t0 + second + 1
        a = sum(1 for x in accepted if lo <= x < hi)
        r = sum(1 for x in refused if lo <= x < hi)
        running = sum(1 for _, s, e in spans if s < hi and e >= lo)
        print(f"  {second:3d} {a:3d} {r:3d} {running}")
    steady = [x - answered[0] for x in answered if x - answered[0] >= args.window] if answered else []
    if len(steady) > 1:
        rpm = (len(steady) - 1) / (steady[-1] - steady[0]) * 60
        print(f"after the first window: {rpm:.0f} requests/min = {rpm / args.rpm:.2f} of the limit")


if __name__ == "__main__":
    sys.exit(main())
