#!/usr/bin/env python
"""End-to-end benchmarks of the workflow on the reference corpus (``make bench``).

Usage::

    python benchmarks/run_benchmarks.py [--quick] [--reps 3] [--corpus ../shared/corpus]
                                        [--json PATH] [--docs PATH | --no-docs] [--only a,b]
                                        [--earlier PATH [--earlier-python PY]]

Every measurement runs the real workflow in a fresh temporary work folder (a hard-linked copy of
``<corpus>/Documents`` plus the repository's ``config.yaml``; nothing is written to the
repository except the results JSON and ``docs/BENCHMARKS.md``) with::

    python -m snakemake -s <repo>/Snakefile -d WORKDIR --cores 2 [...]

through ``benchmarks/snakemake_timed.py`` (the same ``snakemake.cli.main`` with phase timers) under
``/usr/bin/time``; the Gemini runs talk to ``tests/support/emulators/gemini/`` in its own process.
Sections (``--only`` takes their names):

``offline``  full sync run with the offline provider: cold, no-op rerun, one-issue edit
``gemini``   the same with provider gemini against the emulator, at 0 s and 0.5 s latency (the
             README's default command, ``--cores 2``), against the earlier tool's times
``requests`` requests at batch_size 10, and the batches every single-flag edit, insertion and
             deletion of the corpus re-sends (in-process, ``bench_packing.py``)
``limit``    a realistic API: base latency plus a time per flag, and a requests-per-minute
             limit answered with 429s; the run's throughput against that limit
``batch``    batch lifecycle: submit run (fails while pending), complete_all, fetch + merge run
``prompts``  prompt characters per flag and per page, against the earlier tool's estimate
``scale``    synthetic ×1/×4/×16 corpora: DAG building, no-op and full offline run
``memory``   peak RSS: the Snakemake process (all runs), job subprocesses, standalone jobs

With ``--earlier PATH`` (a checkout of the earlier tool, h-arnold/WjecDocumentScraper; nothing
is fetched) the earlier tool runs in the same run, against the same emulator process, alternating
with ours: its sync run and rerun in the gemini section (``--earlier-reps``, default ``--reps``;
at latencies above 0 ``--earlier-slow-reps``, default 1: it sends one request at a time), its
batch lifecycle in the batch section; the ratios and their verdicts then divide by its medians
of this run (``bench_earlier.py``). Without it they divide by the issue's numbers, and the table
says so.

``--quick`` runs every section once at ×1 only (a smoke run); with ``--scales`` the scale
section also runs those sizes once (``--quick --only scale --scales 16 --scale-full all``: one
cold ×16 offline run). The corpus lives outside the repository; when it is absent the script
says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_sections
from bench_corpus import find_corpus
from bench_earlier import EarlierTool
from bench_sections import SECTIONS, TARGETS, Context, profile_misses
from bench_support import GNU_TIME, PYTHON, REPO, log, machine_facts
from bench_table import build_table, docs_section, earlier_line, render_table, write_docs

# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="x1 only, one repetition (smoke run)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--corpus", default=None, help="folder holding Documents/ (default ../shared/corpus)")
    parser.add_argument("--json", default=None, help="results file (default benchmarks/results[-quick].json)")
    parser.add_argument(
        "--docs",
        default=None,
        help="write the summary here (default docs/BENCHMARKS.md; quick runs only with --docs)",
    )
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument(
        "--latencies", default="0,0.5", help="emulator latencies for the gemini/batch sections"
    )
    parser.add_argument(
        "--scales", default=None, help="corpus sizes of the scale section (default 1,4,16; 1 with --quick)"
    )
    parser.add_argument(
        "--scale-full",
        choices=("auto", "all", "none"),
        default="auto",
        help="full offline runs at the larger scales: auto = when predicted under --full-limit-min",
    )
    parser.add_argument("--full-limit-min", type=float, default=25.0)
    parser.add_argument("--limit-batches", type=int, default=150, help="batches in the rate-limit subset")
    parser.add_argument("--limit-rpm", type=int, default=240, help="the emulated API's requests per minute")
    parser.add_argument("--limit-window", type=float, default=15.0, help="seconds over which it counts them")
    parser.add_argument("--limit-latency", type=float, default=0.5, help="seconds per answer")
    parser.add_argument("--limit-per-item", type=float, default=0.05, help="seconds more per flag")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        help="seconds to wait before each measurement for other processes to go below "
        "0.5 busy cores (default 0 quick, 120 full)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip cProfile runs for missed targets")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (printed at the end)")
    parser.add_argument("--tmp", default=None, help="parent folder of the temporary benchmark folder")
    parser.add_argument(
        "--from-json", default=None, help="only rebuild the table (and --docs) from this results file"
    )
    parser.add_argument(
        "--earlier",
        default=None,
        help="a checkout of the earlier tool (h-arnold/WjecDocumentScraper): measure it side by side",
    )
    parser.add_argument(
        "--earlier-python", default=None, help="the Python that runs it (default EARLIER/.venv/bin/python)"
    )
    parser.add_argument(
        "--earlier-sections",
        default="gemini,batch",
        help="sections in which the earlier tool runs too (gemini: sync run and rerun; batch: lifecycle)",
    )
    parser.add_argument(
        "--earlier-reps", type=int, default=None, help="its repetitions (default --reps; 1 with --quick)"
    )
    parser.add_argument(
        "--earlier-slow-reps",
        type=int,
        default=1,
        help="its repetitions of sync runs at latencies above 0 (one request at a time: ~5.5 min at 0.5 s)",
    )
    args = parser.parse_args(argv)
    args.latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    scales = args.scales if args.scales is not None else ("1" if args.quick else "1,4,16")
    args.scales = [int(x) for x in scales.split(",") if x.strip()]
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    args.earlier_sections = [x.strip() for x in args.earlier_sections.split(",") if x.strip()]
    if set(args.earlier_sections) - {"gemini", "batch"}:
        parser.error("--earlier-sections takes gemini and/or batch")
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if args.quick else 120.0
    return args


def report_only(args: argparse.Namespace) -> int:
    """Rebuild the table and the docs section from an earlier results file."""
    results = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    settings = results.get("settings", {})
    args.quick = bool(settings.get("quick", args.quick))
    args.reps = int(settings.get("reps", args.reps))
    ctx = Context(args, None, None)
    ctx.results = results
    rows, verdicts = build_table(ctx)
    print(render_table(rows, markdown=False))
    print(earlier_line(results))
    if args.docs:
        write_docs(Path(args.docs), docs_section(ctx, rows, verdicts))
        log(f"summary written to {args.docs}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return report_only(args)
    corpus = find_corpus(args.corpus)
    if corpus is None:
        print("benchmarks: reference corpus not found (../shared/corpus/Documents); nothing measured.")
        return 0
    if not GNU_TIME:
        log("WARNING: /usr/bin/time not found: peak RSS and CPU figures are not available")
    json_path = Path(
        args.json or REPO / "benchmarks" / ("results-quick.json" if args.quick else "results.json")
    )
    earlier = None
    if args.earlier:
        try:
            earlier = EarlierTool.from_args(args.earlier, args.earlier_python)
        except ValueError as exc:
            print(f"benchmarks: {exc}", file=sys.stderr)
            return 2
        if not set(args.earlier_sections) & set(args.only):
            log(f"WARNING: --earlier given, but none of {args.earlier_sections} runs (--only)")
    root = Path(tempfile.mkdtemp(prefix="llmcat-bench-", dir=args.tmp))
    log(f"benchmark folder {root}; corpus {corpus}; python {PYTHON}")
    ctx = Context(args, corpus, root)
    ctx.earlier = earlier
    ctx.results.update(
        {
            "command": " ".join(
                ["python benchmarks/run_benchmarks.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "json": str(json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path),
            "machine": machine_facts(),
            "loads": {"start": list(os.getloadavg())},
            "settings": {k: v for k, v in vars(args).items()},
            "targets": TARGETS,
        }
    )
    started = time.perf_counter()
    order = [s for s in SECTIONS if s in args.only]
    if "scale" in order and "offline" not in order:
        order.insert(0, "offline")  # x1 of the scale section and the fabricated states reuse it
    try:
        for name in order:
            log(f"== section {name}")
            section_started = time.perf_counter()
            getattr(bench_sections, f"section_{name}")(ctx)
            ctx.results.setdefault("section_seconds", {})[name] = round(
                time.perf_counter() - section_started, 1
            )
        rows, verdicts = build_table(ctx)
        if not args.no_profile and not args.quick:
            profile_misses(ctx, verdicts)
    finally:
        ctx.results["loads"]["end"] = list(os.getloadavg())
        ctx.results["elapsed_s"] = round(time.perf_counter() - started, 1)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(ctx.results, indent=1, default=str) + "\n", encoding="utf-8")
        log(f"results written to {json_path}")
    ctx.results["table"] = [{k: v for k, v in row.items() if k != "fmt"} for row in rows]
    ctx.results["verdicts"] = verdicts
    json_path.write_text(json.dumps(ctx.results, indent=1, default=str) + "\n", encoding="utf-8")
    print(render_table(rows, markdown=False))
    print()
    print(earlier_line(ctx.results))
    print()
    for key, v in verdicts.items():
        print(
            f"target {key}: {({True: 'met', False: 'MISSED', None: 'not measured'})[v['met']]}"
            + ("" if v.get("value") is None else f" ({v['value']:.2f})")
        )
    if not args.no_docs and (args.docs or not args.quick):
        docs = Path(args.docs or REPO / "docs" / "BENCHMARKS.md")
        write_docs(docs, docs_section(ctx, rows, verdicts))
        log(f"summary written to {docs}")
    if args.keep:
        log(f"work folders kept under {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
