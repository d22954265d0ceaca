#!/usr/bin/env python
"""The earlier tool side by side: its ``llm_categoriser`` against the same Gemini emulator.

The targets of ``make bench`` that are ratios (a sync run, the batch lifecycle) are meant to be
measured in one run with the earlier tool, the ``src/llm_review/llm_categoriser`` of the public
repository h-arnold/WjecDocumentScraper (the reference corpus was taken from it at commit
3f341a0). Nothing of it is in this repository and nothing here fetches it: these runs happen only
where the user points at a checkout of it (``--earlier PATH``) and a Python with what its
categoriser imports (``--earlier-python``; default ``PATH/.venv/bin/python``). How to make both:
docs/BENCHMARKS.md ("The earlier tool, side by side").

Every run is its own command, as its README gives it, in a fresh work folder (a hard-linked copy
of the corpus's ``Documents/``), from that folder, with ``PYTHONPATH`` at the checkout:

``sync``   ``python -m src.llm_review.llm_categoriser --dotenv F``: every batch, one request at
           a time (its design), then the same command again: its no-op rerun (every batch
           skipped from its state file)
``batch``  ``... batch-create --dotenv F``, the emulator's ``complete_all``, then
           ``... batch-fetch --check-all-pending --dotenv F``

``F`` is a file of the settings below, each at its code's default (what its ``.env.example``
gives), also set in the environment: no ``.env`` of the checkout can change them, and its
client talks to the emulator only (``GOOGLE_GEMINI_BASE_URL``, a fake key). Nothing that
sleeps is on: ``GEMINI_MIN_REQUEST_INTERVAL`` 0 and ``GEMINI_MAX_RETRIES`` 0 are its defaults.

``earlier_reference`` picks the numbers the table divides by: this run's medians where the
earlier tool ran in it, else the issue's fixed numbers (``EARLIER``), said so in the table.

Standalone (only the earlier tool, e.g. to check a checkout)::

    python benchmarks/bench_earlier.py --earlier ../earlier [--earlier-python PY]
        [--corpus ../shared/corpus] [--reps 1] [--latency 0] [--scenarios sync,batch] [--json P]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_support import (
    GNU_TIME,
    Emulator,
    base_env,
    cpu_busy_seconds,
    log,
    stats_delta,
    summary,
)

if TYPE_CHECKING:
    from bench_sections import Context

# The earlier tool on this machine against the same emulator, measured side by side on another
# day (the table). Used only where a run did not measure the earlier tool itself.
EARLIER = {
    "sync_instant_s": 9.7,
    "sync_half_s": 337.0,
    "requests": 651,
    "batch_lifecycle_s": 86.1,
    "noop_s": 4.7,
    "page_aligned_requests": 1066,
}
MODULE = "src.llm_review.llm_categoriser"
ENTRY = Path("src") / "llm_review" / "llm_categoriser" / "cli.py"
ENV_FILE = ".bench-earlier.env"
# Its settings at the defaults of its code (cli.py, runner.py, gemini_llm.py, provider_registry.py):
# one provider (gemini; without LLM_PRIMARY it would build a Mistral client too), 10 flags per
# request, 2 validation retries, no minimum interval between requests, no 429 retries.
SETTINGS = {
    "LLM_PRIMARY": "gemini",
    "LLM_FALLBACK": "",
    "LLM_CATEGORISER_BATCH_SIZE": "10",
    "LLM_CATEGORISER_MAX_RETRIES": "2",
    "LLM_CATEGORISER_LOG_RESPONSES": "false",
    "LLM_FAIL_ON_QUOTA": "true",
    "GEMINI_MIN_REQUEST_INTERVAL": "0",
    "GEMINI_MAX_RETRIES": "0",
    "GOOGLE_GENAI_USE_VERTEXAI": "false",
}
SCENARIOS = ("sync", "batch")


# --------------------------------------------------------------------------- the checkout


class EarlierTool:
    """A checkout of the earlier tool and the Python that runs it."""

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.python = python

    @classmethod
    def from_args(cls, path: str, python: str | None) -> EarlierTool:
        """Checks the checkout and its Python; raises ``ValueError`` with what is missing."""
        root = Path(path).expanduser().resolve()
        if not (root / ENTRY).is_file():
            raise ValueError(
                f"{root} is not a checkout of the earlier tool (no {ENTRY}); see docs/BENCHMARKS.md"
            )
        default = root / ".venv" / "bin" / "python"
        chosen = python or (str(default) if default.exists() else "")
        if not chosen:
            raise ValueError(
                f"no Python for the earlier tool: pass --earlier-python (no {default}); "
                "see docs/BENCHMARKS.md"
            )
        tool = cls(root, chosen)
        try:
            probe = subprocess.run(
                [chosen, "-c", f"import {MODULE}.cli"],
                cwd=root,
                env=tool.env({}),
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as exc:  # missing or not executable
            raise ValueError(f"cannot run the earlier tool's Python {chosen}: {exc.strerror or exc}") from exc
        if probe.returncode != 0:
            raise ValueError(f"{chosen} cannot import the earlier tool's CLI:\n{probe.stderr[-2000:]}")
        return tool

    def facts(self) -> dict[str, Any]:
        """What ran: the checkout, its commit and the versions of its Python and SDK."""
        versions = subprocess.run(
            [
                self.python,
                "-c",
                "import sys, google.genai as g, pydantic; "
                "print(sys.version.split()[0], g.__version__, pydantic.VERSION)",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        return {
            "path": str(self.root),
            "python_path": self.python,
            "commit": self.commit(),
            "python": versions[0] if versions else "",
            "google_genai": versions[1] if len(versions) > 1 else "",
            "pydantic": versions[2] if len(versions) > 2 else "",
            "settings": SETTINGS,
        }

    def commit(self) -> str | None:
        """The checkout's commit: from git where the checkout is a work tree of its own, else from
        an ``EARLIER_COMMIT`` file in it (an exported tree, docs/BENCHMARKS.md)."""

        def git(*args: str) -> str:
            proc = subprocess.run(
                ["git", "-C", str(self.root), *args], capture_output=True, text=True, check=False
            )
            return proc.stdout.strip() if proc.returncode == 0 else ""

        top = git("rev-parse", "--show-toplevel")
        if top and Path(top).resolve() == self.root:
            return git("rev-parse", "HEAD") or None
        marker = self.root / "EARLIER_COMMIT"
        return marker.read_text(encoding="utf-8").strip() or None if marker.is_file() else None

    def env(self, emulator_env: dict[str, str]) -> dict[str, str]:
        extra = {**SETTINGS, **emulator_env, "PYTHONPATH": str(self.root)}
        if "GEMINI_API_KEY" in emulator_env:  # the SDK prefers GOOGLE_API_KEY: never a real one
            extra["GOOGLE_API_KEY"] = emulator_env["GEMINI_API_KEY"]
        return base_env(extra)

    def command(self, workdir: Path, *args: str) -> list[str]:
        if args and args[0].startswith("batch-"):
            return [self.python, "-m", MODULE, args[0], "--dotenv", str(workdir / ENV_FILE), *args[1:]]
        return [self.python, "-m", MODULE, "--dotenv", str(workdir / ENV_FILE), *args]


def write_env_file(workdir: Path, env: dict[str, str]) -> None:
    keys = [*SETTINGS, "GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY"]
    (workdir / ENV_FILE).write_text("".join(f"{k}={env[k]}\n" for k in keys if k in env), encoding="utf-8")


# --------------------------------------------------------------------------- one timed command


def timed(
    tool: EarlierTool, workdir: Path, label: str, args: list[str], env: dict[str, str], logs: Path
) -> dict:
    """One command of the earlier tool in ``workdir`` under ``/usr/bin/time``: its wall time, CPU
    time, peak RSS, the other processes' load meanwhile, and its closing summary."""
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{label}.log"
    with tempfile.TemporaryDirectory(prefix="bench-earlier-") as scratch:
        time_file = Path(scratch) / "time.txt"
        cmd = tool.command(workdir, *args)
        if GNU_TIME:
            cmd = [GNU_TIME, "-f", "%M %e %U %S", "-o", str(time_file), *cmd]
        loadavg = os.getloadavg()[0]
        busy0 = cpu_busy_seconds()
        started = time.perf_counter()
        with open(log_file, "w", encoding="utf-8") as out:
            rc = subprocess.run(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - started
        busy = cpu_busy_seconds() - busy0
        run: dict[str, Any] = {
            "label": label,
            "args": args,
            "rc": rc,
            "wall": round(wall, 3),
            "rss_mb": None,
            "cpu_s": None,
            "foreign_cores": None,
            "loadavg_before": round(loadavg, 2),
            "log_file": str(log_file),
        }
        if time_file.exists():
            parts = time_file.read_text().strip().splitlines()[-1].split()
            try:
                run["rss_mb"] = round(int(parts[0]) / 1024, 1)
                run["cpu_s"] = round(float(parts[2]) + float(parts[3]), 2)
                run["foreign_cores"] = round(max(0.0, busy - run["cpu_s"]) / wall, 2)
            except (IndexError, ValueError):
                pass
    output = log_file.read_text(encoding="utf-8", errors="replace")
    run["summary"] = closing_summary(output)
    run["tail"] = "\n".join(output.splitlines()[-12:])
    log(f"earlier tool {label}: rc={rc} wall={run['wall']:.2f}s rss={run['rss_mb']}MB {run['summary']}")
    if rc != 0:
        raise RuntimeError(f"earlier tool {label}: exit code {rc}; log {log_file}\n{run['tail']}")
    return run


def closing_summary(output: str) -> dict[str, int]:
    """The counts of its last ``Summary:`` block (``Processed: 651``, ``Created jobs: 651``...)."""
    block = output.rsplit("Summary:", 1)[-1] if "Summary:" in output else ""
    counts: dict[str, int] = {}
    for line in block.splitlines():
        name, sep, value = line.strip().partition(":")
        if sep and value.strip().isdigit():
            counts[name.strip().lower().replace(" ", "_").replace("(", "").replace(")", "")] = int(value)
    return counts


def written_rows(workdir: Path) -> dict[str, int]:
    """The rows of its per-document CSVs and the batches it gave up (its error files)."""
    rows = 0
    csvs = sorted((workdir / "Documents").glob("*/document_reports/*.csv"))
    for path in csvs:
        with open(path, encoding="utf-8", newline="") as handle:
            rows += max(0, sum(1 for _ in csv.reader(handle)) - 1)
    errors = len(list((workdir / "data" / "llm_categoriser_errors").rglob("*.errors.json")))
    return {"rows": rows, "documents": len(csvs), "failed_batch_files": errors}


# --------------------------------------------------------------------------- the flows


def prepare(ctx: Context, tool: EarlierTool, emu: Emulator, name: str) -> tuple[Path, dict[str, str]]:
    wd = ctx.workdir(name)
    env = tool.env(emu.env())
    write_env_file(wd, env)
    return wd, env


def sync_flow(ctx: Context, tool: EarlierTool, emu: Emulator, rep: int) -> dict[str, Any]:
    """Its sync run from a fresh folder, then the same command again (its no-op rerun)."""
    name = f"earlier-sync-{emu.latency:g}s-r{rep}"
    wd, env = prepare(ctx, tool, emu, name)
    out: dict[str, Any] = {"load": ctx.quiet(name)}
    emu.reset()
    cpu0 = emu.cpu_seconds()
    s0 = emu.stats()
    try:
        out["cold"] = timed(tool, wd, f"{name}-cold", [], env, ctx.logs)
        s1 = emu.stats()
        out["written"] = written_rows(wd)
        out["noop"] = timed(tool, wd, f"{name}-noop", [], env, ctx.logs)
    except RuntimeError as exc:
        return failed(ctx, wd, name, out, str(exc))
    s2 = emu.stats()
    out["emulator"] = {
        "cold": stats_delta(s0, s1),
        "noop": stats_delta(s1, s2),
        "cpu_s": round(emu.cpu_seconds() - cpu0, 2),
    }
    out["emulator"]["cold"]["peak_in_flight"] = s1.get("peak_in_flight")  # reset before the cold run
    requests = out["emulator"]["cold"]["generate_content_calls"]
    log(
        f"earlier tool {name}: {requests} requests, {out['written']['rows']} rows in "
        f"{out['written']['documents']} CSVs, {out['written']['failed_batch_files']} batch(es) given up"
    )
    return checked(ctx, wd, name, out, sync_problems(out))


def sync_problems(out: dict[str, Any]) -> list[str]:
    """What shows its sync run did not do the whole job once: a request per batch, a row per flag,
    no batch given up, nothing sent by its rerun."""
    summary_ = out["cold"]["summary"]
    batches, flags = summary_.get("total_batches"), summary_.get("total_issues")
    requests = out["emulator"]["cold"]["generate_content_calls"]
    written = out["written"]
    problems = []
    if batches is None or requests != batches:
        problems.append(f"{requests} requests for {batches} batches (a batch asked again or not at all)")
    if flags is None or written["rows"] != flags:
        problems.append(f"{written['rows']} rows written for {flags} flags")
    if written["failed_batch_files"]:
        problems.append(f"{written['failed_batch_files']} batch(es) given up")
    if out["emulator"]["noop"]["http_requests"]:
        problems.append(f"its rerun sent {out['emulator']['noop']['http_requests']} request(s)")
    return problems


def batch_flow(ctx: Context, tool: EarlierTool, emu: Emulator, rep: int) -> dict[str, Any]:
    """Its batch lifecycle: ``batch-create``, the emulator's ``complete_all``, ``batch-fetch``."""
    name = f"earlier-batch-r{rep}"
    wd, env = prepare(ctx, tool, emu, name)
    out: dict[str, Any] = {"load": ctx.quiet(name)}
    emu.reset()
    s0 = emu.stats()
    try:
        out["submit"] = timed(tool, wd, f"{name}-submit", ["batch-create"], env, ctx.logs)
        s1 = emu.stats()
        started = time.perf_counter()
        out["completed"] = len(emu.complete_all())
        out["complete_all_s"] = round(time.perf_counter() - started, 3)
        out["fetch"] = timed(tool, wd, f"{name}-fetch", ["batch-fetch", "--check-all-pending"], env, ctx.logs)
    except RuntimeError as exc:
        return failed(ctx, wd, name, out, str(exc))
    s2 = emu.stats()
    out["emulator"] = {
        "submit": stats_delta(s0, s1),
        "fetch": stats_delta(s1, s2),
        "total": stats_delta(s0, s2),
    }
    out["jobs_created"] = out["emulator"]["total"]["batch_creations"]
    out["http_requests"] = out["emulator"]["total"]["http_requests"]
    out["lifecycle_s"] = round(out["submit"]["wall"] + out["complete_all_s"] + out["fetch"]["wall"], 3)
    out["written"] = written_rows(wd)
    log(
        f"earlier tool {name}: lifecycle {out['lifecycle_s']:.2f} s, {out['jobs_created']} remote jobs, "
        f"{out['http_requests']} HTTP requests, {out['written']['rows']} rows"
    )
    return checked(ctx, wd, name, out, batch_problems(out, flags_in(ctx)))


def batch_problems(out: dict[str, Any], flags: int | None) -> list[str]:
    """What shows its lifecycle did not do the whole job: a remote job per batch, every job
    completed and fetched, a row per flag (``flags``: its sync runs' count, where they ran)."""
    created = out["submit"]["summary"].get("created_jobs")
    fetched = out["fetch"]["summary"]
    written = out["written"]
    problems = []
    batches = out["submit"]["summary"].get("total_batches")
    if created is None or created != batches or created != out["jobs_created"]:
        problems.append(f"{created} jobs reported and {out['jobs_created']} created for {batches} batches")
    if fetched.get("completed") != created or fetched.get("failed") or fetched.get("still_pending"):
        problems.append(
            f"fetch: {fetched.get('completed')} completed, {fetched.get('failed')} failed, "
            f"{fetched.get('still_pending')} still pending of {created}"
        )
    if not written["rows"] or (flags is not None and written["rows"] != flags):
        problems.append(f"{written['rows']} rows written for {flags if flags is not None else 'some'} flags")
    if written["failed_batch_files"]:
        problems.append(f"{written['failed_batch_files']} batch(es) given up")
    return problems


def flags_in(ctx: Context) -> int | None:
    """The flags its sync runs of this run counted (its ``Total issues``), if any ran."""
    for flows in ((ctx.results.get("earlier") or {}).get("gemini") or {}).values():
        for flow in flows:
            if "cold" in flow and flow["cold"]["summary"].get("total_issues") is not None:
                return flow["cold"]["summary"]["total_issues"]
    return None


def checked(ctx: Context, wd: Path, name: str, out: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """``out`` with its ``problems``: a run that did not do the whole job is logged and left out of
    the medians the ratios divide by (``earlier_reference``)."""
    out["problems"] = problems
    for problem in problems:
        log(f"WARNING: earlier tool {name}: {problem}; this run is left out of the ratios")
    ctx.drop(wd)
    return out


def failed(ctx: Context, wd: Path, name: str, out: dict[str, Any], error: str) -> dict[str, Any]:
    """A command of the earlier tool failed: recorded, logged, left out of the ratios; the
    benchmark goes on (its log is kept under the benchmark's ``logs/``)."""
    out["error"] = error
    return checked(ctx, wd, name, out, [error.splitlines()[0]])


def earlier_results(ctx: Context) -> dict[str, Any]:
    """``ctx.results["earlier"]``, created with the facts of the checkout."""
    tool: EarlierTool = ctx.earlier
    if "earlier" not in ctx.results:
        ctx.results["earlier"] = {"tool": tool.facts(), "gemini": {}}
        facts = ctx.results["earlier"]["tool"]
        log(
            f"earlier tool: {facts['path']} (commit {facts['commit'] or 'unknown'}), Python "
            f"{facts['python']}, google-genai {facts['google_genai']}"
        )
    return ctx.results["earlier"]


# --------------------------------------------------------------------------- what the table divides by


@dataclass
class Reference:
    """One number of the earlier tool that a ratio divides by, and where it comes from."""

    value: float
    same_run: bool
    n: int = 0

    def describe(self, unit: str = " s") -> str:
        number = f"{self.value:.3g}{unit}" if self.same_run else f"{self.value:g}{unit}"
        if self.same_run:
            return f"{number}, median of {self.n} in this run"
        return f"{number}: the issue's number, not measured in this run"


def valid(flows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The runs that did the whole job (no ``problems``)."""
    return [f for f in flows or [] if not f.get("problems")]


def earlier_reference(results: dict[str, Any]) -> dict[str, Reference]:
    """The earlier tool's numbers for the ratios: the medians of its runs in ``results`` that did
    the whole job, where it ran in them, else the issue's fixed numbers (``EARLIER``)."""
    refs = {key: Reference(float(value), False) for key, value in EARLIER.items()}
    earlier = results.get("earlier") or {}
    gemini = {key: valid(flows) for key, flows in (earlier.get("gemini") or {}).items()}
    for key, latency in (("sync_instant_s", "latency_0"), ("sync_half_s", "latency_0.5")):
        walls = [f["cold"]["wall"] for f in gemini.get(latency) or []]
        if walls:
            refs[key] = Reference(summary(walls)["median"], True, len(walls))
    noops = [f["noop"]["wall"] for flows in gemini.values() for f in flows if "noop" in f]
    if noops:
        refs["noop_s"] = Reference(summary(noops)["median"], True, len(noops))
    requests = [f["emulator"]["cold"]["generate_content_calls"] for flows in gemini.values() for f in flows]
    if requests:
        refs["requests"] = Reference(summary(requests)["median"], True, len(requests))
    lifecycles = [f["lifecycle_s"] for f in valid(earlier.get("batch"))]
    if lifecycles:
        refs["batch_lifecycle_s"] = Reference(summary(lifecycles)["median"], True, len(lifecycles))
    return refs


def left_out(results: dict[str, Any]) -> int:
    """How many of the earlier tool's runs in ``results`` were left out of the ratios."""
    earlier = results.get("earlier") or {}
    flows = [f for fs in (earlier.get("gemini") or {}).values() for f in fs]
    flows += earlier.get("batch") or []
    return sum(1 for f in flows if f.get("problems"))


def measured_in(results: dict[str, Any]) -> bool:
    """Whether a run of the earlier tool in ``results`` gave a number the ratios divide by."""
    return any(ref.same_run for ref in earlier_reference(results).values())


# --------------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--earlier", required=True, help="a checkout of h-arnold/WjecDocumentScraper")
    parser.add_argument("--earlier-python", default=None, help="default EARLIER/.venv/bin/python")
    parser.add_argument("--corpus", default=None, help="folder holding Documents/ (default ../shared/corpus)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per emulated answer (sync)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated of {SCENARIOS}")
    parser.add_argument("--json", default=None, help="write the runs here")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    args = parser.parse_args(argv)

    from bench_corpus import find_corpus
    from bench_sections import Context

    corpus = find_corpus(args.corpus)
    if corpus is None:
        print("bench_earlier: reference corpus not found (../shared/corpus/Documents); nothing measured.")
        return 0
    try:
        tool = EarlierTool.from_args(args.earlier, args.earlier_python)
    except ValueError as exc:
        print(f"bench_earlier: {exc}", file=sys.stderr)
        return 2
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    root = Path(tempfile.mkdtemp(prefix="llmcat-earlier-"))
    settings = argparse.Namespace(quick=True, reps=args.reps, wait_quiet=0.0, keep=args.keep)
    ctx = Context(settings, corpus, root)
    ctx.earlier = tool
    results = earlier_results(ctx)
    try:
        with Emulator(args.latency) as emu:
            if "sync" in scenarios:
                key = f"latency_{args.latency:g}"
                results["gemini"][key] = [sync_flow(ctx, tool, emu, r) for r in range(args.reps)]
            if "batch" in scenarios:
                results["batch_latency"] = args.latency
                results["batch"] = [batch_flow(ctx, tool, emu, r) for r in range(args.reps)]
    finally:
        if args.json:
            Path(args.json).write_text(
                json.dumps(ctx.results, indent=1, default=str) + "\n", encoding="utf-8"
            )
            log(f"runs written to {args.json}")
        if args.keep:
            log(f"work folders kept under {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    refs = earlier_reference(ctx.results)
    for key in ("sync_instant_s", "sync_half_s", "noop_s", "batch_lifecycle_s", "requests"):
        if refs[key].same_run:
            print(f"{key}: {refs[key].describe('')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
