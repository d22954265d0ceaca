"""The cost estimate next to the usage the provider reported, on the reference corpus.

For each mode (sync, batch): a fresh work folder of the reference corpus, the estimate
(``python -m llm_categoriser estimate --json``, nothing sent), then a full run against the
Gemini emulator (``python -m support.emulators.gemini`` in its own process; in batch mode its jobs are
completed before the second run), and what that run recorded from the emulator's usage
metadata (``run-summary.json``, ``this_run``). Prints one JSON document; the numbers go in
docs/BENCHMARKS.md. One heavy run at a time: the two modes run one after the other.

    .venv/bin/python benchmarks/bench_costs.py [--corpus ../shared/corpus] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_corpus import find_corpus, master_copy, new_workdir
from bench_support import PYTHON, REPO, Emulator, log, snakemake


def answer_chars(corpus: Path) -> dict[str, float]:
    """Characters of one answer object (compact JSON, plus the ", " between objects) in the
    reference labels of Gemini 2.5 Flash: the calibration of ``ANSWER_CHARS_PER_FLAG``."""
    labels = corpus / "labels" / "gemini.csv"
    lengths = []
    with open(labels, encoding="utf-8", newline="") as handle:
        for n, row in enumerate(csv.DictReader(handle)):
            answer = {
                "issue_id": n % 10,
                "error_category": row["error_category"],
                "confidence_score": int(float(row["confidence_score"] or 0)),
                "reasoning": row["reasoning"],
            }
            lengths.append(len(json.dumps(answer, ensure_ascii=False)) + 2)
    return {
        "labels": len(lengths),
        "mean": round(statistics.mean(lengths), 1),
        "median": statistics.median(lengths),
    }


def estimate(work: Path, mode: str) -> dict[str, Any]:
    cmd = [PYTHON, "-m", "llm_categoriser", "estimate", "--directory", str(work), "--json"]
    cmd += ["--provider", "gemini", "--config", f"mode={mode}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(done.stdout)


def measure(documents: Path, root: Path, mode: str) -> dict[str, Any]:
    work = new_workdir(documents, root / mode)
    planned = estimate(work, mode)
    with Emulator(latency=0.0) as emu:
        args = ["--config", "provider=gemini", f"mode={mode}", "--keep-going"]
        if mode == "batch":
            snakemake(work, f"costs-{mode}-submit", args, env=emu.env(), expect="fail")
            emu.complete_all()
        run = snakemake(work, f"costs-{mode}", args, env=emu.env())
    reported = json.loads((work / "Documents" / "run-summary.json").read_text(encoding="utf-8"))["this_run"]
    usage, guess = reported["usage"], planned["usage"]
    return {
        "mode": mode,
        "estimate": {
            "requests": planned["requests_to_send"],
            "input_tokens": guess["input_tokens"],
            "output_tokens": guess["output_tokens"],
            "cost_usd": float(planned["cost_usd"]),
        },
        "reported": {
            "requests": reported["requests_sent"],
            "input_tokens": usage["input_tokens"],
            "output_tokens": usage["output_tokens"],
            "thinking_tokens": usage["thinking_tokens"],
            "cost_usd": reported["cost_usd"],
        },
        "estimate_over_reported": {
            "input_tokens": round(guess["input_tokens"] / usage["input_tokens"], 3),
            "output_tokens": round(guess["output_tokens"] / usage["output_tokens"], 3),
            "cost_usd": round(float(planned["cost_usd"]) / reported["cost_usd"], 3),
        },
        "run_wall_s": run.wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="the reference corpus (default: ../shared/corpus)")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    corpus = find_corpus(args.corpus)
    if corpus is None:
        print("reference corpus not found: pass --corpus", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as scratch:
        root = Path(args.keep or scratch)
        documents = master_copy(corpus, root)
        results = [measure(documents, root, mode) for mode in ("sync", "batch")]
    log("done")
    calibration = answer_chars(corpus)
    print(
        json.dumps(
            {"corpus": str(corpus), "answer_chars_per_flag": calibration, "results": results}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
