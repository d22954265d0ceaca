"""Process plumbing for ``run_benchmarks.py``: Snakemake runs, the emulator, CPU and memory probes.

Every Snakemake run goes through ``benchmarks/snakemake_timed.py`` (``snakemake.cli.main`` with
phase timers, see its docstring) under ``/usr/bin/time -f "%M %e %U %S"``, so each run yields its
wall time, the peak RSS of the Snakemake process (GNU time reports the largest of the process
and its reaped descendants), its CPU time, the phases, the plan line and the job counts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from support.workflow import ENV_SETTINGS, clean_env, job_counts, snakemake_command  # noqa: E402

WRAPPER = REPO / "benchmarks" / "snakemake_timed.py"
EMULATOR_MODULE = "support.emulators.gemini"  # run with ``python -m`` from tests/
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
GNU_TIME = shutil.which("time", path="/usr/bin:/bin") or ""
FAKE_KEY = "bench-fake-key-not-a-secret"
# Runs start without any service address or key of the caller's environment.
BENCH_DROP = ENV_SETTINGS | {"GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI"}
HZ = os.sysconf("SC_CLK_TCK")

_PLAN_RE = re.compile(
    r"Plan: (?P<documents>\d+) document\(s\), (?P<batches>\d+) batch\(es\), (?P<issues>\d+) flag\(s\)"
    r".*\((?:(?P<unchanged>unchanged)|(?P<written>\d+) planning file\(s\) updated), (?P<seconds>[\d.]+) s\)"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics


def summary(values: list[float]) -> dict[str, Any]:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


# --------------------------------------------------------------------------- machine load


def cpu_busy_seconds() -> float:
    """System-wide busy CPU time (all cores) from /proc/stat, in seconds."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / HZ


def foreign_load(seconds: float = 3.0) -> float:
    """Cores kept busy by other processes while this one sleeps (we run nothing meanwhile)."""
    before = cpu_busy_seconds()
    time.sleep(seconds)
    return (cpu_busy_seconds() - before) / seconds


def wait_for_quiet(max_wait: float, threshold: float = 0.5) -> dict[str, float]:
    """Wait (at most ``max_wait`` s) until other processes use less than ``threshold`` cores."""
    started = time.monotonic()
    busy = foreign_load(2.0)
    while busy >= threshold and time.monotonic() - started < max_wait:
        busy = foreign_load(5.0)
    return {
        "foreign_cores": round(busy, 2),
        "waited_s": round(time.monotonic() - started, 1),
        "loadavg_1m": os.getloadavg()[0],
    }


def machine_facts() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    versions = subprocess.run(
        [
            PYTHON,
            "-c",
            "import sys, snakemake, google.genai as g; "
            "print(sys.version.split()[0], snakemake.__version__, g.__version__)",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "python": versions[0] if versions else "",
        "snakemake": versions[1] if len(versions) > 1 else "",
        "google_genai": versions[2] if len(versions) > 2 else "",
        "git_commit": commit + ("+local-changes" if dirty else ""),
        "loadavg": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# --------------------------------------------------------------------------- memory sampler


def _vm_hwm_kb(pid: int, field: str = "VmHWM:") -> int:
    """A process's peak resident set (``VmRSS:``: its current one), in KB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _ppid_map() -> dict[int, list[int]]:
    """parent pid -> child pids, from /proc/<pid>/stat (no /proc/<pid>/task/*/children here)."""
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(name))
    return tree


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:200]


class ChildMemorySampler(threading.Thread):
    """Polls the peak RSS (VmHWM) of the descendants of the Snakemake process (job subprocesses)."""

    def __init__(self, root_pid: int, interval: float = 0.25, wrapped: bool = True) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.wrapped = wrapped  # root is /usr/bin/time: Snakemake is its child
        self.interval = interval
        self.stop_event = threading.Event()
        self.peaks: dict[int, tuple[int, str]] = {}
        self.together_kb = 0  # the most the Snakemake process and its descendants held at once

    def run(self) -> None:
        while not self.stop_event.is_set():
            tree = _ppid_map()
            top = tree.get(self.root_pid, []) if self.wrapped else [self.root_pid]
            now = sum(_vm_hwm_kb(t, "VmRSS:") for t in top)
            stack = [c for t in top for c in tree.get(t, [])]
            while stack:
                pid = stack.pop()
                stack.extend(tree.get(pid, []))
                now += _vm_hwm_kb(pid, "VmRSS:")
                hwm = _vm_hwm_kb(pid)
                if hwm and hwm > self.peaks.get(pid, (0, ""))[0]:
                    cmd = self.peaks.get(pid, (0, ""))[1] or _cmdline(pid)
                    self.peaks[pid] = (hwm, cmd)
            self.together_kb = max(self.together_kb, now)
            self.stop_event.wait(self.interval)

    def largest(self) -> dict[str, Any] | None:
        python = [(kb, cmd) for kb, cmd in self.peaks.values() if "python" in cmd]
        pool = python or list(self.peaks.values())
        if not pool:
            return None
        kb, cmd = max(pool)
        return {"rss_mb": round(kb / 1024, 1), "cmd": cmd}

    def together_mb(self) -> float:
        """The most memory the Snakemake process and its descendants (worker processes, scripts)
        held at once, sampled every ``interval``."""
        return round(self.together_kb / 1024, 1)


# --------------------------------------------------------------------------- Snakemake runs


@dataclass
class Run:
    label: str
    args: list[str]
    cores: int
    rc: int
    wall: float
    rss_mb: float | None = None
    cpu_s: float | None = None
    foreign_cores: float | None = None
    loadavg_before: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    nothing_to_do: bool = False
    largest_child: dict[str, Any] | None = None
    together_rss_mb: float | None = None  # the most its processes held at once (sampled)
    log_file: str = ""
    tail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = clean_env(drop=BENCH_DROP)
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env.update(extra or {})
    return env


def snakemake(
    workdir: Path,
    label: str,
    args: list[str] | tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    cores: int = 2,
    logs: Path | None = None,
    expect: str = "ok",
    profile: Path | None = None,
    profile_threads: bool = False,
    timeout: float = 4 * 3600,
) -> Run:
    """Run the workflow in ``workdir``; ``expect`` is "ok" (exit 0), "fail" (non-zero) or "any"."""
    logs = logs or workdir.parent
    logs.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", label)
    log_file = logs / f"{safe}.log"
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        time_file = Path(scratch) / "time.txt"
        timings_file = Path(scratch) / "timings.json"
        cmd = snakemake_command(workdir, *args, cores=cores, entry=[PYTHON, str(WRAPPER)])
        if GNU_TIME:
            cmd = [GNU_TIME, "-f", "%M %e %U %S", "-o", str(time_file), *cmd]
        run_env = base_env(env)
        run_env["BENCH_TIMINGS_FILE"] = str(timings_file)
        if profile is not None:
            run_env["BENCH_PROFILE"] = str(profile)
            if profile_threads:
                run_env["BENCH_PROFILE_THREADS"] = "1"
        loadavg = os.getloadavg()[0]
        busy0 = cpu_busy_seconds()
        launched_at = time.time()
        started = time.perf_counter()
        with open(log_file, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=run_env)
            sampler = ChildMemorySampler(proc.pid, wrapped=bool(GNU_TIME))
            sampler.start()
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            finally:
                sampler.stop_event.set()
                sampler.join()
        wall = time.perf_counter() - started
        busy = cpu_busy_seconds() - busy0
        run = Run(
            label=label,
            args=list(args),
            cores=cores,
            rc=rc,
            wall=round(wall, 3),
            loadavg_before=round(loadavg, 2),
            log_file=str(log_file),
            largest_child=sampler.largest(),
            together_rss_mb=sampler.together_mb() or None,
        )
        if time_file.exists():
            parts = time_file.read_text().strip().splitlines()[-1].split()
            try:
                run.rss_mb = round(int(parts[0]) / 1024, 1)
                run.cpu_s = round(float(parts[2]) + float(parts[3]), 2)
            except (IndexError, ValueError):
                pass
        if run.cpu_s is not None and wall > 0:
            run.foreign_cores = round(max(0.0, busy - run.cpu_s) / wall, 2)
        if timings_file.exists():
            phases = json.loads(timings_file.read_text())
            phases["startup"] = phases.pop("started_at", launched_at) - launched_at
            if "total" in phases:
                phases["shutdown"] = phases["total"] - phases.get("main_end", phases["total"])
                phases["unaccounted"] = wall - phases["startup"] - phases["total"]
            run.phases = {k: round(v, 3) if isinstance(v, float) else v for k, v in phases.items()}
    output = log_file.read_text(encoding="utf-8", errors="replace")
    match = _PLAN_RE.search(output)
    if match:
        run.plan = {
            "documents": int(match["documents"]),
            "batches": int(match["batches"]),
            "issues": int(match["issues"]),
            "files_written": 0 if match["unchanged"] else int(match["written"]),
            "seconds": float(match["seconds"]),
        }
    run.jobs = job_counts(output)
    run.nothing_to_do = "Nothing to be done" in output
    run.tail = "\n".join(output.splitlines()[-15:])
    ok = (expect == "ok" and rc == 0) or (expect == "fail" and rc != 0) or expect == "any"
    log(
        f"{label}: rc={rc} wall={run.wall:.2f}s rss={run.rss_mb}MB jobs={sum(run.jobs.values())} "
        f"foreign={run.foreign_cores}"
    )
    if not ok:
        raise RuntimeError(
            f"{label}: unexpected exit code {rc} (expected {expect}); log {log_file}\n{run.tail}"
        )
    return run


# --------------------------------------------------------------------------- the emulator


class EmulatorServer:
    """An emulator of ``tests/support/emulators/`` in its own process (its own CPU, as a real
    API would be): started by ``command``, which prints its base URL; ``control`` reaches its
    ``/_emulator/`` paths below ``root``."""

    def __init__(self, command: list[str], what: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=cwd
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError(f"the {what} did not print its URL")
        self.root = self.url.split("/v1")[0]
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def control(self, method: str, action: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload or {}).encode() if method != "GET" else None
        request = urllib.request.Request(f"{self.root}/_emulator/{action}", method=method, data=data)
        with self._opener.open(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Emulator(EmulatorServer):
    """``tests/support/emulators/gemini/`` as a separate process."""

    def __init__(
        self,
        latency: float,
        per_item: float = 0.0,
        requests_per_minute: int | None = None,
        rate_window: float = 60.0,
    ) -> None:
        """``latency`` s per answer plus ``per_item`` s per flag; with ``requests_per_minute``,
        at most that many calls per ``rate_window`` s, 429 beyond (see the emulator's docstring)."""
        self.latency = latency
        limit = [] if requests_per_minute is None else ["--requests-per-minute", str(requests_per_minute)]
        command = [PYTHON, "-m", EMULATOR_MODULE, "--port", "0", "--latency", str(latency)]
        command += ["--latency-per-item", str(per_item), "--rate-window", str(rate_window), *limit]
        super().__init__(command, "emulator", cwd=REPO / "tests")

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")

    def reset(self) -> None:
        self.control("POST", "reset")

    def complete_all(self) -> list[str]:
        return self.control("POST", "complete_all").get("completed", [])

    def env(self) -> dict[str, str]:
        return {"GOOGLE_GEMINI_BASE_URL": self.url, "GEMINI_API_KEY": FAKE_KEY}

    def cpu_seconds(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / HZ
        except (OSError, IndexError, ValueError):
            return 0.0


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    keys = ("http_requests", "generate_content_calls", "batch_creations", "batch_items_answered")
    out: dict[str, Any] = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    endpoints = {}
    for name, count in after.get("endpoint_counts", {}).items():
        diff = count - before.get("endpoint_counts", {}).get(name, 0)
        if diff:
            endpoints[name] = diff
    out["endpoint_counts"] = endpoints
    return out


def measure_rss(code: str, cwd: Path) -> float | None:
    """Peak RSS (MB) of ``python -c code`` under /usr/bin/time."""
    if not GNU_TIME:
        return None
    with tempfile.NamedTemporaryFile(prefix="bench-rss-", suffix=".txt") as handle:
        proc = subprocess.run(
            [GNU_TIME, "-f", "%M", "-o", handle.name, PYTHON, "-c", code],
            cwd=cwd,
            env=base_env(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"standalone job failed:\n{proc.stderr[-3000:]}")
        return round(int(Path(handle.name).read_text().split()[-1]) / 1024, 1)


# --------------------------------------------------------------------------- docs/BENCHMARKS.md

NEW_DOCS = "# Benchmarks\n\nRun `make bench` (or `make bench BENCH_ARGS=--quick`).\n"


def write_section(path: Path, begin: str, end: str, section: str, heading: str = "") -> None:
    """Put ``section`` (from the mark ``begin`` to the mark ``end``) where those marks stand in
    the file ``path``; where they do not, append it under ``heading``; create a missing file."""
    text = path.read_text(encoding="utf-8") if path.exists() else NEW_DOCS
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + heading + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
