"""The measurements of ``run_benchmarks.py``: one ``section_<name>`` function per section."""

from __future__ import annotations

import argparse
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_earlier
from bench_corpus import (
    edit_one_issue,
    fabricate_outputs,
    master_copy,
    new_workdir,
    scaled_corpus,
    subset_corpus,
)
from bench_earlier import EARLIER as EARLIER  # the issue's numbers, re-exported
from bench_earlier import EarlierTool
from bench_packing import packing_numbers
from bench_prompts import prompt_volume, tokens_from_results
from bench_support import (
    PYTHON,
    REPO,
    Emulator,
    base_env,
    log,
    measure_rss,
    snakemake,
    stats_delta,
    summary,
    wait_for_quiet,
)
from support.workflow import answer_times

SECTIONS = ("offline", "gemini", "requests", "limit", "batch", "prompts", "scale", "memory")
GEMINI = ["--config", "provider=gemini"]
BATCH = ["--config", "provider=gemini", "mode=batch", "--keep-going"]
# EARLIER: the issue's numbers for the earlier tool, used where a run did not measure it side by
# side (``--earlier``, bench_earlier.py). benchmarks/ holds none of its code.
TARGETS = {
    "sync_instant_ratio": 1.0,  # of the earlier tool's wall time
    "sync_half_ratio": 0.1,
    "requests": 651,
    "edit_requests": 1,
    "batch_ratio": 0.1,
    "noop_s": 1.0,
    "x16_full_s": 60.0,
    "x16_rss_mb": 1024.0,
    "cost_per_flag_growth": 1.0,  # x16 over x1
    "limit_share": 0.9,  # throughput at least this share of the API's limit
    "edit_s": 10.0,
    "prompt_ratio": 0.5,
}


class Context:
    def __init__(self, args: argparse.Namespace, corpus: Path | None, root: Path | None) -> None:
        self.args = args
        self.corpus = corpus
        self.root = root or Path(tempfile.gettempdir())
        self.logs = self.root / "logs"
        self.master = master_copy(corpus, self.root) if corpus is not None else self.root
        self.reps = 1 if args.quick else args.reps
        self.results: dict[str, Any] = {}
        self.keep: dict[str, Path] = {}
        self.earlier: EarlierTool | None = None  # a checkout of the earlier tool (--earlier)

    def earlier_reps(self, section: str, latency: float) -> int:
        """Repetitions of the earlier tool's runs in ``section`` at ``latency`` (0: not run)."""
        if self.earlier is None or section not in self.args.earlier_sections:
            return 0
        if section == "gemini" and latency > 0:
            return self.args.earlier_slow_reps
        if self.args.earlier_reps is not None:
            return self.args.earlier_reps
        return 1 if self.args.quick else self.reps

    def quiet(self, what: str) -> dict[str, float]:
        state = wait_for_quiet(self.args.wait_quiet)
        log(
            f"{what}: other processes use {state['foreign_cores']} core(s), load {state['loadavg_1m']:.2f}"
            + (f" (waited {state['waited_s']} s)" if state["waited_s"] >= 1 else "")
        )
        return state

    def workdir(self, name: str, documents: Path | None = None) -> Path:
        return new_workdir(documents or self.master, self.root / "work" / name)

    def drop(self, path: Path) -> None:
        if not self.args.keep and path not in self.keep.values():
            shutil.rmtree(path, ignore_errors=True)


def cli_run(workdir: Path, label: str, logs: Path) -> dict[str, Any]:
    """The README's run command (``llm-categoriser run``, offline) in ``workdir``: its wall time
    and whether it answered from its stamp without starting Snakemake."""
    logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [PYTHON, "-m", "llm_categoriser", "run", "--cores", "2"],
        cwd=workdir,
        env=base_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    (logs / f"{label}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    return {"wall": round(wall, 3), "rc": proc.returncode, "stamp": "Nothing to do:" in proc.stdout}


# --------------------------------------------------------------------------- sections


def sync_flow(
    ctx: Context, name: str, rep: int, args: list[str], emu: Emulator | None, dry_run: bool = False
) -> dict[str, Any]:
    """Cold full run, no-op rerun, then a one-issue edit, in one fresh work folder."""
    wd = ctx.workdir(f"{name}-r{rep}")
    env = emu.env() if emu else {}
    out: dict[str, Any] = {"load": ctx.quiet(f"{name} rep {rep + 1}")}
    if emu:
        emu.reset()
    cpu0 = emu.cpu_seconds() if emu else 0.0
    s0 = emu.stats() if emu else {}
    out["cold"] = snakemake(wd, f"{name}-r{rep}-cold", args, env, logs=ctx.logs).as_dict()
    s1 = emu.stats() if emu else {}
    out["noop"] = snakemake(wd, f"{name}-r{rep}-noop", args, env, logs=ctx.logs).as_dict()
    if not out["noop"]["nothing_to_do"]:
        log(f"WARNING: {name} no-op rerun had work to do: {out['noop']['jobs']}")
    if name == "offline":
        # the README's command: its first run after a plain Snakemake run starts Snakemake
        # (and writes the stamp), the next one is answered from the stamp
        out["cli_first"] = cli_run(wd, f"{name}-r{rep}-cli-first", ctx.logs)
        out["noop_cli"] = cli_run(wd, f"{name}-r{rep}-cli-noop", ctx.logs)
        if not out["noop_cli"]["stamp"]:
            log(f"WARNING: {name} run command did not answer from its stamp")
    if dry_run:
        out["dryrun"] = snakemake(
            wd, f"{name}-r{rep}-dryrun", [*args, "--dry-run"], env, logs=ctx.logs
        ).as_dict()
    s2 = emu.stats() if emu else {}
    out["edit"] = edit_one_issue(wd / "Documents")
    answers = answer_times(wd)
    out["edited"] = snakemake(wd, f"{name}-r{rep}-edit", args, env, logs=ctx.logs).as_dict()
    out["edited"]["batches_resent"] = sum(1 for p, t in answer_times(wd).items() if answers.get(p) != t)
    if emu:
        s3 = emu.stats()
        out["emulator"] = {
            "cold": stats_delta(s0, s1),
            "noop": stats_delta(s1, s2),
            "edit": stats_delta(s2, s3),
            "cpu_s": round(emu.cpu_seconds() - cpu0, 2),
        }
        # the emulator was reset before the cold run, which sends the most requests
        out["emulator"]["cold"]["peak_in_flight"] = s1.get("peak_in_flight")
        if rep == 0:
            out["tokens"] = tokens_from_results(wd)
    if rep == 0 and name == "offline":
        ctx.keep["offline_done"] = wd  # finished x1 state: source for fabricated outputs
    else:
        ctx.drop(wd)
    return out


def section_offline(ctx: Context) -> None:
    ctx.results["offline"] = [sync_flow(ctx, "offline", r, [], None, dry_run=True) for r in range(ctx.reps)]


def section_gemini(ctx: Context) -> None:
    """Our sync runs per latency; with ``--earlier``, the earlier tool's in the same emulator
    process, alternating with ours (ours, its, ours, its, ...)."""
    out: dict[str, Any] = {}
    for latency in ctx.args.latencies:
        key = f"latency_{latency:g}"
        theirs = ctx.earlier_reps("gemini", latency)
        with Emulator(latency) as emu:
            out[key] = []
            for r in range(max(ctx.reps, theirs)):
                if r < ctx.reps:
                    out[key].append(sync_flow(ctx, f"gemini-{latency:g}s", r, GEMINI, emu))
                if r < theirs:
                    earlier = bench_earlier.earlier_results(ctx)["gemini"].setdefault(key, [])
                    earlier.append(bench_earlier.sync_flow(ctx, ctx.earlier, emu, r))
    ctx.results["gemini"] = out


def batch_flow(ctx: Context, emu: Emulator, rep: int, latency: float) -> dict[str, Any]:
    name = f"batch-{latency:g}s-r{rep}"
    wd = ctx.workdir(name)
    out: dict[str, Any] = {"load": ctx.quiet(name)}
    emu.reset()
    s0 = emu.stats()
    out["submit"] = snakemake(wd, f"{name}-submit", BATCH, emu.env(), logs=ctx.logs, expect="fail").as_dict()
    s1 = emu.stats()
    started = time.perf_counter()
    out["completed"] = len(emu.complete_all())
    out["complete_all_s"] = round(time.perf_counter() - started, 3)
    out["fetch"] = snakemake(wd, f"{name}-fetch", BATCH, emu.env(), logs=ctx.logs).as_dict()
    s2 = emu.stats()
    handles = [json.loads(p.read_text()) for p in sorted((wd / "data" / "jobs").glob("*/handle.json"))]
    out["jobs_created"] = s2["batch_creations"] - s0.get("batch_creations", 0)
    out["handles"] = len(handles)
    out["largest_payload_bytes"] = max(
        [h.get("payload_bytes", 0) for h in handles]
        + [s2.get("max_inline_batch_bytes", 0)]
        + list(s2.get("uploaded_file_sizes", []))
    )
    out["transports"] = sorted({h.get("transport", "") for h in handles})
    out["emulator"] = {
        "submit": stats_delta(s0, s1),
        "fetch": stats_delta(s1, s2),
        "total": stats_delta(s0, s2),
    }
    out["http_requests"] = out["emulator"]["total"]["http_requests"]
    out["lifecycle_s"] = round(out["submit"]["wall"] + out["complete_all_s"] + out["fetch"]["wall"], 3)
    csvs = list((wd / "Documents").glob("*/document_reports/*.csv"))
    out["document_csvs"] = len(csvs)
    ctx.drop(wd)
    return out


def section_batch(ctx: Context) -> None:
    """Our batch lifecycles per latency; with ``--earlier``, the earlier tool's alternating with
    ours at the first latency (the emulator's latency delays only ``generateContent``, which no
    batch lifecycle calls)."""
    out: dict[str, Any] = {}
    for index, latency in enumerate(ctx.args.latencies):
        theirs = ctx.earlier_reps("batch", latency) if index == 0 else 0
        with Emulator(latency) as emu:
            flows = out[f"latency_{latency:g}"] = []
            for r in range(max(ctx.reps, theirs)):
                if r < ctx.reps:
                    flows.append(batch_flow(ctx, emu, r, latency))
                if r < theirs:
                    earlier = bench_earlier.earlier_results(ctx)
                    earlier["batch_latency"] = latency
                    earlier.setdefault("batch", []).append(bench_earlier.batch_flow(ctx, ctx.earlier, emu, r))
    ctx.results["batch"] = out


def section_prompts(ctx: Context) -> None:
    log("prompt volume: planning in-process (provider gemini)")
    with tempfile.TemporaryDirectory(prefix="bench-plan-", dir=ctx.root) as scratch:
        ctx.results["prompts"] = prompt_volume(ctx.master, Path(scratch))
    p = ctx.results["prompts"]
    log(f"prompt chars per flag {p['chars_per_issue']:.0f} vs earlier tool {p['old']['chars_per_issue']:.0f}")


def _subset_subjects(ctx: Context, target_batches: int) -> tuple[list[str], int, int]:
    sys.path.insert(0, str(REPO))
    from llm_categoriser.plan import build_plan
    from llm_categoriser.settings import resolve

    with tempfile.TemporaryDirectory(prefix="bench-plan-", dir=ctx.root) as scratch:
        settings = resolve(
            {"documents_dir": str(ctx.master), "data_dir": scratch, "provider": "gemini"}, env={}
        )
        plan = build_plan(settings)
    per_subject: dict[str, list[int]] = {}
    for doc in plan.documents:
        entry = per_subject.setdefault(doc.subject, [0, 0])
        entry[0] += len(doc.batch_ids)
        entry[1] += doc.flags
    chosen, batches, issues = [], 0, 0
    for subject in sorted(per_subject):
        if batches >= target_batches:
            break
        chosen.append(subject)
        batches += per_subject[subject][0]
        issues += per_subject[subject][1]
    return chosen, batches, issues


def section_requests(ctx: Context) -> None:
    log("requests and locality: planning in-process (provider gemini, batch_size 10)")
    with tempfile.TemporaryDirectory(prefix="bench-plan-", dir=ctx.root) as scratch:
        ctx.results["requests"] = packing_numbers(ctx.master, Path(scratch))
    r = ctx.results["requests"]
    log(
        f"{r['batches']} requests for {r['flags']} flags; insertions re-sending <= 2: "
        f"{r['insert']['at_most_two']:.1%}, deletions {r['delete']['at_most_two']:.1%}"
    )


def section_limit(ctx: Context) -> None:
    """The README's default command against an API with latency per flag and a rate limit."""
    a = ctx.args
    subjects, batches, issues = _subset_subjects(ctx, a.limit_batches)
    documents = subset_corpus(ctx.master, subjects, ctx.root, "limit-subset")
    per_window = max(1, round(a.limit_rpm * a.limit_window / 60))
    log(
        f"rate-limited API: {a.limit_rpm} requests/min ({per_window} per {a.limit_window:g} s), "
        f"{a.limit_latency:g} s + {a.limit_per_item:g} s per flag; subset {', '.join(subjects)} "
        f"({batches} batches, {issues} flags)"
    )
    runs = []
    with Emulator(a.limit_latency, a.limit_per_item, per_window, a.limit_window) as emu:
        for rep in range(ctx.reps):
            name = f"limit-r{rep}"
            wd = ctx.workdir(name, documents)
            load = ctx.quiet(name)
            emu.reset()
            run = snakemake(wd, name, GEMINI, emu.env(), logs=ctx.logs).as_dict()
            stats = emu.stats()
            times = stats["answered_at"]
            steady = [t for t in times if t >= a.limit_window]  # after the first window's burst
            steady_rpm = (
                (len(steady) - 1) / (steady[-1] - steady[0]) * 60
                if len(steady) > 1 and steady[-1] > steady[0]
                else None
            )
            runs.append(
                {
                    "load": load,
                    "run": run,
                    "answered": stats["answered"],
                    "rate_limited": stats["rate_limited"],
                    "overall_rpm": (stats["answered"] - 1) / stats["answered_span"] * 60
                    if stats["answered_span"]
                    else None,
                    "steady_rpm": steady_rpm,
                }
            )
            ctx.drop(wd)
    ctx.results["limit"] = {
        "subjects": subjects,
        "batches": batches,
        "issues": issues,
        "rpm": a.limit_rpm,
        "window_s": a.limit_window,
        "per_window": per_window,
        "latency_s": a.limit_latency,
        "per_item_s": a.limit_per_item,
        "runs": runs,
    }


def section_scale(ctx: Context) -> None:
    factors = sorted({1, *ctx.args.scales})  # x1 is the offline section's run: the base of the growth
    out: dict[str, Any] = {}
    full_times: dict[int, float] = {}
    for factor in factors:
        docs = ctx.master if factor == 1 else scaled_corpus(ctx.master, factor, ctx.root)
        entry: dict[str, Any] = {"factor": factor, "runs": []}
        run_full = factor == 1 or _want_full(ctx, factor, full_times)
        entry["full_run"] = run_full
        for rep in range(ctx.reps):
            if factor == 1 and "offline" in ctx.results and rep < len(ctx.results["offline"]):
                flow = ctx.results["offline"][rep]
                entry["runs"].append({"cold": flow["cold"], "noop": flow["noop"], "reused": "offline"})
                continue
            name = f"scale-x{factor}-r{rep}"
            wd = ctx.workdir(name, docs)
            item: dict[str, Any] = {"load": ctx.quiet(name)}
            if run_full:
                item["cold"] = snakemake(wd, f"{name}-cold", [], None, logs=ctx.logs).as_dict()
            else:
                item["cold_dryrun"] = snakemake(
                    wd, f"{name}-cold-dryrun", ["--dry-run"], None, logs=ctx.logs
                ).as_dict()
                done = ctx.keep.get("offline_done")
                if done is None:
                    raise RuntimeError("the scale section needs the offline section's finished x1 run")
                item["fabricated_files"] = fabricate_outputs(done, wd, factor)
            item["noop"] = snakemake(wd, f"{name}-noop", [], None, logs=ctx.logs).as_dict()
            if not item["noop"]["nothing_to_do"]:
                log(f"WARNING: {name} no-op had work to do: {item['noop']['jobs']}")
            entry["runs"].append(item)
            ctx.drop(wd)
        if run_full:
            full_times[factor] = summary([r["cold"]["wall"] for r in entry["runs"]])["median"]
        out[f"x{factor}"] = entry
    ctx.results["scale"] = out


def _want_full(ctx: Context, factor: int, full_times: dict[int, float]) -> bool:
    mode = ctx.args.scale_full
    if mode == "all":
        return True
    if mode == "none":
        return False
    known = sorted(full_times)
    if len(known) >= 2:
        a, b = known[-2], known[-1]
        growth = full_times[b] / full_times[a]
        per_step = growth ** (1 / max(1e-9, (_log(b) - _log(a)))) if b > a else growth
        predicted = full_times[b] * per_step ** (_log(factor) - _log(b))
    elif known:
        predicted = full_times[known[-1]] * factor / known[-1]
    else:
        return True
    limit = ctx.args.full_limit_min * 60
    log(
        f"scale x{factor}: full offline run predicted at {predicted / 60:.1f} min "
        f"(limit {limit / 60:.0f} min)"
    )
    ctx.results.setdefault("scale_predictions", {})[f"x{factor}"] = predicted
    return predicted <= limit


def _log(x: float) -> float:
    import math

    return math.log(x)


def section_memory(ctx: Context) -> None:
    """Standalone peak RSS of the biggest jobs (they run as threads inside Snakemake otherwise)."""
    done = ctx.keep.get("offline_done")
    if done is None:
        log("memory: no finished offline run; standalone job measurements skipped")
        ctx.results["memory_standalone"] = {}
        return
    specs = sorted(
        (done / "data" / "plan" / "jobs").glob("*.json"),
        key=lambda p: len(json.loads(p.read_text())["batches"]),
    )
    spec = specs[-1]
    job = json.loads(spec.read_text())
    manifests = sorted(
        (done / "data" / "plan").rglob("manifest.json"),
        key=lambda p: len(json.loads(p.read_text())["batches"]),
    )
    manifest = manifests[-1]
    m = json.loads(manifest.read_text())
    # the merge job with the most documents (its CSVs are unchanged: only its record is written)
    merge = max(
        (done / "data" / "merge").glob("*.json"), key=lambda p: len(json.loads(p.read_text())["documents"])
    )
    merged = json.loads(merge.read_text())
    scratch = Path(tempfile.mkdtemp(prefix="bench-mem-", dir=ctx.root))
    imports = (
        "import llm_categoriser.steps, llm_categoriser.providers.offline.provider, llm_categoriser.outputs\n"
    )
    data = str(scratch / "data")  # a copy of the plan, an empty cache: every batch is categorised
    shutil.copytree(done / "data" / "plan", scratch / "data" / "plan")
    job_spec = str(scratch / spec.relative_to(done))
    job_out, job_log = str(scratch / "r.json"), str(scratch / "c.log")
    settings = f"resolve({{'data_dir': {data!r}, 'documents_dir': {str(scratch / 'Docs')!r}}}, env={{}})"
    out = {
        "baseline_imports_mb": measure_rss(imports, done),
        "categorise_largest_job_mb": measure_rss(
            imports
            + "from llm_categoriser.settings import resolve\n"
            + f"s = {settings}\n"
            + "from llm_categoriser.steps import run_categorise\n"
            + f"run_categorise({job_spec!r}, {job_out!r}, {job_log!r}, s)\n",
            done,
        ),
        "largest_job": {"job": job["job"], "batches": len(job["batches"])},
        "merge_largest_job_mb": measure_rss(
            imports + "from llm_categoriser.records import MergedJob, read_record\n"
            "from llm_categoriser.steps import run_merge\n"
            f"r = read_record({str(merge)!r}, MergedJob)\n"
            f"run_merge(r.job, r.documents, {str(scratch / 'm.json')!r}, {str(scratch / 'm.log')!r})\n",
            done,
        ),
        "largest_merge_job": {
            "job": merged["job"],
            "documents": len(merged["documents"]),
            "largest_document": f"{m['subject']}/{m['document']}",
            "largest_document_issues": len(m["flags"]),
        },
    }
    csvs = sorted(str(p) for p in (done / "Documents").glob("*/document_reports/*.csv"))
    stats = [
        str(done / "data" / "merged" / Path(c).parent.parent.name / (Path(c).stem + ".json")) for c in csvs
    ]
    out["combine_mb"] = measure_rss(
        imports + "from llm_categoriser.outputs import combine\n"
        f"combine({csvs!r}, {stats!r}, {str(done / 'data' / 'plan' / 'plan.json')!r}, "
        f"{str(scratch / 'all.csv')!r}, {str(scratch / 'sum.json')!r})\n",
        done,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    ctx.results["memory_standalone"] = out


# --------------------------------------------------------------------------- profiles


def profile_top(path: Path, limit: int = 25) -> dict[str, list[str]]:
    import io

    out: dict[str, list[str]] = {}
    for key in ("cumulative", "tottime"):
        buffer = io.StringIO()
        stats = pstats.Stats(str(path), stream=buffer)
        stats.strip_dirs().sort_stats(key).print_stats(limit)
        lines = buffer.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
        head = [line for line in lines[:start] if "function calls" in line]
        out[key] = head + [line.rstrip() for line in lines[start:] if line.strip()]
    return out


def profile_misses(ctx: Context, verdicts: dict[str, Any]) -> None:
    """cProfile (main thread) of the runs behind missed targets, in a finished x1 work folder."""
    done = ctx.keep.get("offline_done")
    if done is None:
        return
    profiles: dict[str, Any] = {}
    wanted = [k for k, v in verdicts.items() if v.get("met") is False]
    if "noop" in wanted or "dag_growth" in wanted:
        prof = ctx.root / "noop.prof"
        run = snakemake(done, "profile-noop", [], None, logs=ctx.logs, profile=prof)
        profiles["noop"] = {"wall": run.wall, "phases": run.phases, **profile_top(prof)}
    if "edit" in wanted:
        prof = ctx.root / "edit.prof"
        edit_one_issue(done / "Documents")
        run = snakemake(done, "profile-edit", [], None, logs=ctx.logs, profile=prof)
        profiles["edit"] = {"wall": run.wall, "phases": run.phases, "plan": run.plan, **profile_top(prof)}
    if profiles:
        ctx.results["profiles"] = profiles
