#!/usr/bin/env python
"""The reference corpus through the OpenAI and Mistral providers and through a fallback chain.

Usage::

    python benchmarks/bench_providers.py [--corpus ../shared/corpus] [--only openai,mistral,fallback]
                                         [--cores 4] [--json PATH] [--docs PATH | --no-docs]

Each measurement runs the real workflow (``benchmarks/snakemake_timed.py``, as ``make bench``)
in a fresh temporary work folder against the provider's loopback emulator, started as its own
process (``python -m support.emulators.<name>`` in ``tests/``, instant answers):

``openai``, ``mistral``  sync mode (``--cores N --resources api=N``), then batch mode in a
    second folder: the submit run (it fails while the jobs are pending), the emulator finishes
    every job, the fetch run. Reported: flags per status, requests and jobs the emulator
    served, wall time of each run.
``fallback``  sync mode with ``LLM_PRIMARY=gemini LLM_FALLBACK=openai``: the Gemini emulator's
    per-day quota runs out once it has answered half of the batches; every flag must end
    answered, and the summary says how many each provider answered.

Numbers go to ``docs/BENCHMARKS.md`` between the ``providers`` marks. When the corpus is absent
the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_corpus import find_corpus, master_copy, new_workdir
from bench_support import PYTHON, REPO, EmulatorServer, log, snakemake, write_section


@dataclass(frozen=True)
class Service:
    """How the workflow reaches one emulator: its key variable, and its URL (env or config)."""

    key_variable: str
    url_variable: str = ""
    url_config: str = ""


SERVICES = {
    "openai": Service("OPENAI_API_KEY", url_variable="OPENAI_BASE_URL"),
    "mistral": Service("MISTRAL_API_KEY", url_config="mistral_base_url"),
    "gemini": Service("GEMINI_API_KEY", url_variable="GOOGLE_GEMINI_BASE_URL"),
}
BEGIN, END = "<!-- providers:begin -->", "<!-- providers:end -->"


class EmulatorProcess(EmulatorServer):
    """One emulator of ``tests/support/emulators/`` by its module name, in its own process."""

    def __init__(self, name: str, *extra: str) -> None:
        self.name = name
        command = [PYTHON, "-m", f"support.emulators.{name}", "--port", "0", *extra]
        super().__init__(command, f"{name} emulator", cwd=REPO / "tests")

    def env(self) -> dict[str, str]:
        service = SERVICES[self.name]
        env = {service.key_variable: f"bench-fake-{self.name}-key"}
        if service.url_variable:
            env[service.url_variable] = self.url
        return env

    def config(self) -> list[str]:
        service = SERVICES[self.name]
        return [f"{service.url_config}={self.url}"] if service.url_config else []


def summary_of(work: Path) -> dict[str, Any]:
    return json.loads((work / "Documents" / "run-summary.json").read_text(encoding="utf-8"))


def provider_flow(name: str, master: Path, root: Path, cores: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with EmulatorProcess(name, "--auto-complete") as emu:
        sync_dir = new_workdir(master, root / f"{name}-sync")
        args = ["--resources", f"api={cores}", "--config", f"provider={name}", *emu.config()]
        run = snakemake(sync_dir, f"{name}-sync", args, emu.env(), cores=cores)
        stats = emu.control("GET", "stats")
        summary = summary_of(sync_dir)
        out["sync"] = {
            "wall_s": run.wall,
            "flags": summary["issues"],
            "statuses": summary["statuses"],
            "batches": summary["batches"],
            "requests": stats["chat_completions"],
            "http_requests": stats["http_requests"],
        }
        emu.control("POST", "reset")
        batch_dir = new_workdir(master, root / f"{name}-batch")
        batch_args = [*args, "mode=batch", "--keep-going"]
        submit = snakemake(
            batch_dir, f"{name}-batch-submit", batch_args, emu.env(), cores=cores, expect="any"
        )
        completed = emu.control("POST", "complete_all").get("completed", [])
        fetch = snakemake(batch_dir, f"{name}-batch-fetch", batch_args, emu.env(), cores=cores)
        stats = emu.control("GET", "stats")
        summary = summary_of(batch_dir)
        out["batch"] = {
            "submit_wall_s": submit.wall,
            "fetch_wall_s": fetch.wall,
            "wall_s": round(submit.wall + fetch.wall, 2),
            "flags": summary["issues"],
            "statuses": summary["statuses"],
            "jobs": stats["batch_creations"],
            "completed_by_emulator": len(completed),
            "sync_requests": stats["chat_completions"],
            "http_requests": stats["http_requests"],
        }
    return out


def fallback_flow(master: Path, root: Path, cores: int) -> dict[str, Any]:
    """Gemini first; its daily quota runs out at half the batches; OpenAI takes over."""
    work = new_workdir(master, root / "fallback")
    with EmulatorProcess("gemini") as gemini, EmulatorProcess("openai") as openai:
        env = {**gemini.env(), **openai.env(), "LLM_PRIMARY": "gemini", "LLM_FALLBACK": "openai"}
        planned = snakemake(work, "fallback-plan", ["--dry-run"], env, cores=cores).plan
        stop = threading.Event()
        half: dict[str, Any] = {"target": planned["batches"] // 2}

        def exhaust_at_half() -> None:
            target = half["target"]
            while not stop.wait(0.05):
                if gemini.control("GET", "stats")["generate_content_calls"] >= target:
                    gemini.control("POST", "faults", {"fault": "rate_limit_day", "times": None})
                    half["injected_at"] = gemini.control("GET", "stats")["generate_content_calls"]
                    return

        watcher = threading.Thread(target=exhaust_at_half, daemon=True)
        watcher.start()
        started = time.perf_counter()
        run = snakemake(work, "fallback-sync", ["--resources", f"api={cores}"], env, cores=cores)
        stop.set()
        watcher.join()
        summary = summary_of(work)
        return {
            "wall_s": round(time.perf_counter() - started, 2),
            "snakemake_wall_s": run.wall,
            "flags": summary["issues"],
            "statuses": summary["statuses"],
            "answers_by_provider": summary.get("answers_by_provider", {}),
            "gemini_quota_after_requests": half.get("injected_at"),
            "gemini_requests": gemini.control("GET", "stats")["generate_content_calls"],
            "openai_requests": openai.control("GET", "stats")["chat_completions"],
        }


def render(results: dict[str, Any], command: str) -> str:
    lines = [BEGIN, "", f"Last run: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", ""]
    rows = [
        "| provider | mode | flags | statuses | requests | jobs | HTTP requests | wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("openai", "mistral"):
        if name not in results:
            continue
        sync, batch = results[name]["sync"], results[name]["batch"]
        rows.append(
            f"| {name} | sync | {sync['flags']} | {_statuses(sync['statuses'])} | {sync['requests']} | – "
            f"| {sync['http_requests']} | {sync['wall_s']:.1f} s |"
        )
        rows.append(
            f"| {name} | batch | {batch['flags']} | {_statuses(batch['statuses'])} | "
            f"{batch['sync_requests']} sync re-asks | {batch['jobs']} | {batch['http_requests']} | "
            f"{batch['wall_s']:.1f} s (submit {batch['submit_wall_s']:.1f} "
            f"+ fetch {batch['fetch_wall_s']:.1f}) |"
        )
    lines += rows
    if "fallback" in results:
        fb = results["fallback"]
        split = ", ".join(f"{k} {v}" for k, v in fb["answers_by_provider"].items())
        lines += [
            "",
            f"Fallback (`LLM_PRIMARY=gemini LLM_FALLBACK=openai`, Gemini's daily quota spent after "
            f"{fb['gemini_quota_after_requests']} requests): {fb['flags']} flags, "
            f"{_statuses(fb['statuses'])}; answers per provider: {split}; "
            f"{fb['gemini_requests']} Gemini and {fb['openai_requests']} OpenAI requests; "
            f"{fb['snakemake_wall_s']:.1f} s.",
        ]
    lines += ["", END]
    return "\n".join(lines)


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in statuses.items())


def write_docs(path: Path, section: str) -> None:
    write_section(path, BEGIN, END, section, "## Providers: OpenAI, Mistral, fallback chain\n\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--only", default="openai,mistral,fallback")
    parser.add_argument("--cores", type=int, default=4)
    parser.add_argument("--json", default=None)
    parser.add_argument("--docs", default=str(REPO / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--from-json", default=None, help="only write the docs from an earlier --json")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        write_docs(Path(args.docs), render(results, results.pop("_command", "")))
        return 0
    corpus = find_corpus(args.corpus)
    if corpus is None:
        print("reference corpus not found; nothing measured")
        return 0
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-providers-") as scratch:
        root = Path(scratch)
        master = master_copy(corpus, root / "master")
        for name in wanted:
            log(f"section {name}")
            if name == "fallback":
                results[name] = fallback_flow(master, root, args.cores)
            else:
                results[name] = provider_flow(name, master, root, args.cores)
            log(json.dumps(results[name]))
    command = ("python benchmarks/bench_providers.py " + " ".join(argv or sys.argv[1:])).strip()
    text = json.dumps({**results, "_command": command}, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    if not args.no_docs:
        write_docs(Path(args.docs), render(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
