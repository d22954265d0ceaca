"""Run the crash harness: ``python tests/support/crash_harness --corpus sample --kills 5`` (see
the package docstring for replays)."""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
if str(TESTS) not in sys.path:  # run as a script: make ``support`` importable
    sys.path.insert(0, str(TESTS))

from support.crash_harness.driver import format_summary, run  # noqa: E402
from support.crash_harness.records import MODES, REPO, SAMPLE_DOCUMENTS, SHARED_DOCUMENTS, Options  # noqa: E402


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
        f"Replay: python tests/support/crash_harness {shlex.join(replay)} --seed {seed} "
        f"[--modes M --only-trial N]"
    )
    return 0 if report["totals"]["differences"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
