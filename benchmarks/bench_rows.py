"""The rows of the benchmark table and the verdicts against the targets, one method per section."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_earlier import EARLIER, earlier_reference
from bench_sections import TARGETS
from bench_support import summary

Row = dict[str, Any]
Runs = list[dict[str, Any]]


def walls(flows: Runs, key: str, field: str = "wall") -> list[float]:
    return [f[key][field] for f in flows if key in f]


def phase(flows: Runs, key: str, name: str) -> list[float]:
    return [f[key]["phases"].get(name) for f in flows if key in f and f[key].get("phases")]


def latency_label(key: str) -> str:
    """``latency_0.5`` -> ``0.5``."""
    return key.split("_")[1]


class TableRows:
    """Builds the rows (numbered by section) and the verdicts from a results dictionary."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.r = results
        self.rows: list[Row] = []
        self.verdicts: dict[str, Any] = {}
        # what the ratios divide by: the earlier tool's medians of this run, else the issue's
        self.ref = earlier_reference(results)
        self.earlier = results.get("earlier") or {}

    def build(self) -> tuple[list[Row], dict[str, Any]]:
        self.sync_runs()
        self.batch_lifecycle()
        self.noop()
        self.edits()
        self.prompts()
        self.memory()
        self.scale()
        self.requests()
        self.rate_limit()
        return self.rows, self.verdicts

    # ----------------------------------------------------------------- row makers

    def row(
        self,
        section: str,
        name: str,
        values: list[Any],
        unit: str = "s",
        target: str = "",
        met: bool | None = None,
        fmt: str = "{:.2f}",
    ) -> Row:
        s = summary([v for v in values if v is not None])
        item = {"section": section, "name": name, "unit": unit, **s, "target": target, "met": met, "fmt": fmt}
        self.rows.append(item)
        return item

    def count(self, section: str, name: str, values: list[Any]) -> Row:
        return self.row(section, name, values, unit="", fmt="{:.0f}")

    def megabytes(self, section: str, name: str, values: list[Any], target: str = "") -> Row:
        return self.row(section, name, values, unit="MB", fmt="{:.0f}", target=target)

    def verdict(self, key: str, item: Row, met: bool) -> None:
        item["met"] = met
        self.verdicts[key] = {"met": met, "value": item["median"]}

    # ----------------------------------------------------------------- sections

    def sync_runs(self) -> None:
        if "offline" in self.r:
            self.row("1", "Full sync run, offline provider, cold", walls(self.r["offline"], "cold"))
        for lat, flows in self.r.get("gemini", {}).items():
            lab = latency_label(lat)
            cold = self.row(
                "1", f"Full sync run, gemini via emulator ({lab} s latency), cold", walls(flows, "cold")
            )
            self.count(
                "1",
                f"  generateContent requests ({lab} s)",
                [x["emulator"]["cold"]["generate_content_calls"] for x in flows],
            )
            self.in_flight(f"  most requests in flight at once ({lab} s)", flows)
            self.row("1", f"  CPU time of the Snakemake process ({lab} s)", walls(flows, "cold", "cpu_s"))
            which = {
                "0": ("sync_instant", "sync_instant_s", "sync_instant_ratio"),
                "0.5": ("sync_half", "sync_half_s", "sync_half_ratio"),
            }.get(lab)
            if which and cold["median"] is not None:
                key, earlier, target = which
                ref = self.ref[earlier]
                ratio = self.row(
                    "1",
                    f"  ratio to the earlier tool ({ref.describe()})",
                    [w / ref.value for w in walls(flows, "cold")],
                    unit="x",
                    target=f"<= {TARGETS[target]:g}x",
                )
                self.verdict(key, ratio, ratio["median"] <= TARGETS[target])
                self.verdicts[key]["same_run"] = ref.same_run
            self.earlier_sync(lat)

    def earlier_sync(self, lat: str) -> None:
        """The earlier tool's sync runs at this latency, where it ran in this run."""
        flows = (self.earlier.get("gemini") or {}).get(lat) or []
        if not flows:
            return
        lab = latency_label(lat)
        self.row("1", f"Earlier tool, same emulator ({lab} s latency): sync run, cold", walls(flows, "cold"))
        self.count(
            "1",
            f"  its generateContent requests ({lab} s)",
            [x["emulator"]["cold"]["generate_content_calls"] for x in flows],
        )
        self.in_flight(f"  its most requests in flight at once ({lab} s)", flows)
        self.count("1", f"  its rows written ({lab} s)", [x["written"]["rows"] for x in flows])
        self.row("1", f"  its CPU time ({lab} s)", walls(flows, "cold", "cpu_s"))

    def in_flight(self, name: str, flows: list[dict[str, Any]]) -> None:
        """The most generateContent calls the emulator had under way at once in each cold run
        (absent from the JSON of a run before it was counted)."""
        peaks = [x["emulator"]["cold"].get("peak_in_flight") for x in flows]
        if all(p is not None for p in peaks):
            self.count("1", name, peaks)

    def batch_lifecycle(self) -> None:
        ref = self.ref["batch_lifecycle_s"]
        limit = TARGETS["batch_ratio"] * ref.value
        for lat, flows in self.r.get("batch", {}).items():
            lab = latency_label(lat)
            life = self.row(
                "2",
                f"Batch lifecycle total ({lab} s latency)",
                [x["lifecycle_s"] for x in flows],
                target=f"<= {limit:.1f} s (0.1x)",
            )
            life["met"] = life["median"] is not None and life["median"] <= limit
            ratio = self.row(
                "2",
                f"  ratio to the earlier tool ({ref.describe()})",
                [x["lifecycle_s"] / ref.value for x in flows],
                unit="x",
                target=f"<= {TARGETS['batch_ratio']:g}x",
            )
            ratio["met"] = life["met"]
            # every latency must meet it; the value is the first latency's
            self.verdicts.setdefault(
                "batch", {"met": True, "value": life["median"], "same_run": ref.same_run}
            )
            self.verdicts["batch"]["met"] = self.verdicts["batch"]["met"] and life["met"]
            self.row("2", "  submit run (exit != 0 while pending)", [x["submit"]["wall"] for x in flows])
            self.row("2", "  complete_all", [x["complete_all_s"] for x in flows], fmt="{:.3f}")
            self.row("2", "  fetch + merge run", [x["fetch"]["wall"] for x in flows])
            self.count("2", "  jobs created", [x["jobs_created"] for x in flows])
            self.row("2", "  largest payload", [x["largest_payload_bytes"] / 1e6 for x in flows], unit="MB")
            self.count("2", "  HTTP requests (emulator)", [x["http_requests"] for x in flows])
        flows = self.earlier.get("batch") or []
        if flows:
            lab = f"{self.earlier.get('batch_latency', 0):g}"
            self.row(
                "2",
                f"Earlier tool, same emulator: batch lifecycle total ({lab} s latency)",
                [x["lifecycle_s"] for x in flows],
            )
            self.row("2", "  its batch-create", [x["submit"]["wall"] for x in flows])
            self.row("2", "  complete_all", [x["complete_all_s"] for x in flows], fmt="{:.3f}")
            self.row("2", "  its batch-fetch --check-all-pending", [x["fetch"]["wall"] for x in flows])
            self.count("2", "  its remote jobs created", [x["jobs_created"] for x in flows])
            self.count("2", "  its HTTP requests (emulator)", [x["http_requests"] for x in flows])
            self.count("2", "  its rows written", [x["written"]["rows"] for x in flows])

    def noop(self) -> None:
        if "offline" in self.r:
            f = self.r["offline"]
            noop = self.row(
                "3",
                "No-op rerun, wall (offline, x1, `llm-categoriser run`)",
                walls(f, "noop_cli"),
                target=f"<= {TARGETS['noop_s']:g} s",
            )
            self.verdict("noop", noop, noop["median"] is not None and noop["median"] <= TARGETS["noop_s"])
            self.row(
                "3", "  its first run after a plain Snakemake run (writes the stamp)", walls(f, "cli_first")
            )
            self.row("3", "No-op rerun, wall (offline, x1, plain `snakemake --cores 2`)", walls(f, "noop"))
            self.row("3", "  DAG building (_build_dag + first postprocess)", phase(f, "noop", "dag"))
            self.row("3", "  parse (Snakefile + plan from cache)", phase(f, "noop", "parse"))
            self.row("3", "  import snakemake", phase(f, "noop", "import"))
            self.row("3", "  dry-run wall (cross-check)", walls(f, "dryrun"))
        for lat, flows in self.r.get("gemini", {}).items():
            self.row("3", f"No-op rerun, wall (gemini {latency_label(lat)} s)", walls(flows, "noop"))
        ref = self.ref["noop_s"]
        if ref.same_run:
            noops = [f for flows in (self.earlier.get("gemini") or {}).values() for f in flows]
            self.row(
                "3", "Earlier tool: its rerun with every batch done (same command)", walls(noops, "noop")
            )

    def edits(self) -> None:
        edit_rows = []
        if "offline" in self.r:
            f = self.r["offline"]
            edit_rows.append(
                self.row("4", "One-issue edit, wall (offline)", walls(f, "edited"), target="<= 10 s")
            )
            self.count(
                "4", "  categorise jobs run (offline)", [x["edited"]["jobs"].get("categorise", 0) for x in f]
            )
            self.count("4", "  batches re-sent (offline)", [x["edited"].get("batches_resent") for x in f])
            self.row("4", "  plan rebuild at parse time", [x["edited"]["plan"].get("seconds") for x in f])
        for lat, flows in self.r.get("gemini", {}).items():
            lab = latency_label(lat)
            e = self.row(
                "4",
                f"One-issue edit, wall (gemini {lab} s)",
                walls(flows, "edited"),
                target="<= 10 s, 1 request",
            )
            cat = [x["edited"]["jobs"].get("categorise", 0) for x in flows]
            resent = [x["edited"].get("batches_resent") for x in flows]
            req = [x["emulator"]["edit"]["generate_content_calls"] for x in flows]
            e["met"] = (
                e["median"] is not None
                and e["median"] <= TARGETS["edit_s"]
                and set(resent) == {1}
                and set(req) == {1}
            )
            edit_rows.append(e)
            self.count("4", f"  categorise jobs run ({lab} s)", cat)
            self.count("4", f"  batches re-sent ({lab} s)", resent)
            self.count("4", f"  generateContent requests ({lab} s)", req)
        for e in edit_rows:
            if e["met"] is None:
                e["met"] = e["median"] is not None and e["median"] <= TARGETS["edit_s"]
        if edit_rows:
            self.verdicts["edit"] = {
                "met": all(e["met"] for e in edit_rows),
                "value": max(e["median"] for e in edit_rows),
            }

    def prompts(self) -> None:
        if "prompts" not in self.r:
            return
        p = self.r["prompts"]
        for label, chars in (
            ("Prompt chars per flag (system + user)", p["chars_per_issue"]),
            ("Prompt chars per distinct page sent", p["chars_per_distinct_page"]),
            ("Earlier tool, chars per flag (estimate)", p["old"]["chars_per_issue"]),
            ("Earlier tool, chars per distinct page", p["old"]["chars_per_distinct_page"]),
        ):
            self.row("5", label, [chars], unit="chars", fmt="{:.0f}")
        ratio = self.row(
            "5", "Ratio new / earlier (per flag)", [p["ratio_new_to_old"]], unit="", target="<= 0.5"
        )
        self.verdict("prompts", ratio, p["ratio_new_to_old"] <= TARGETS["prompt_ratio"])

    def memory(self) -> None:
        mem_runs: list[tuple[str, dict[str, Any]]] = []
        if "offline" in self.r:
            mem_runs += [("offline cold", x["cold"]) for x in self.r["offline"]]
        for lat, flows in self.r.get("gemini", {}).items():
            mem_runs += [(f"gemini {lat} cold", x["cold"]) for x in flows]
        if mem_runs:
            for name, runs in (
                ("offline", [x["rss_mb"] for n, x in mem_runs if n == "offline cold"]),
                ("gemini", [x["rss_mb"] for n, x in mem_runs if n.startswith("gemini")]),
            ):
                if runs:  # a section left out of the run (--only) has no row
                    self.megabytes("6", f"Peak RSS, Snakemake process ({name} cold, x1)", runs)
            # every job runs in Snakemake's process unless --use-conda (docs/DESIGN.md §11)
            children = [x["largest_child"]["rss_mb"] for _, x in mem_runs if x.get("largest_child")]
            if children:
                self.megabytes("6", "Peak RSS, largest job subprocess", children)
        ms = self.r.get("memory_standalone") or {}
        if ms:
            self.megabytes("6", "  standalone: interpreter + package imports", [ms["baseline_imports_mb"]])
            self.megabytes(
                "6", "  standalone: categorise, largest job (offline)", [ms["categorise_largest_job_mb"]]
            )
            self.megabytes(
                "6",
                "  standalone: merge, the job with the most documents",
                [ms.get("merge_largest_job_mb", ms.get("merge_largest_document_mb"))],
            )
            self.megabytes("6", "  standalone: combine", [ms["combine_mb"]])

    def scale(self) -> None:
        scale = self.r.get("scale", {})
        medians: dict[str, dict[int, float]] = {
            "dag": {},
            "noop": {},
            "full": {},
            "cold_dag": {},
            "per_flag": {},
        }
        for entry in scale.values():
            k = entry["factor"]
            runs = entry["runs"]
            dag = self.row(
                "7", f"x{k}: DAG building (no-op run)", [x["noop"]["phases"].get("dag") for x in runs]
            )
            medians["dag"][k] = dag["median"]
            cold_dag = [
                x["cold"]["phases"].get("dag") if "cold" in x else x["cold_dryrun"]["phases"].get("dag")
                for x in runs
            ]
            medians["cold_dag"][k] = self.row("7", f"x{k}: DAG building (cold)", cold_dag)["median"]
            noop_walls = [x["noop"]["wall"] for x in runs]
            medians["noop"][k] = self.row("7", f"x{k}: no-op rerun, wall", noop_walls)["median"]
            if entry["full_run"]:
                self.full_run(k, runs, medians)
            else:
                self.rows.append(
                    {
                        "section": "7",
                        "name": f"x{k}: full offline run, cold",
                        "unit": "s",
                        "n": 0,
                        "median": None,
                        "min": None,
                        "max": None,
                        "values": [],
                        "target": "",
                        "met": None,
                        "fmt": "{:.2f}",
                        "note": "not run (predicted over the time limit)",
                    }
                )
            plan = [x["noop"]["plan"].get("issues") for x in runs if x["noop"].get("plan")]
            if plan:
                self.count("7", f"x{k}: flags", plan[:1])
        for kind, label in (
            ("dag", "DAG building (no-op)"),
            ("cold_dag", "DAG building (cold)"),
            ("noop", "no-op wall"),
            ("full", "full offline run"),
        ):
            values = medians[kind]
            for a, b in ((1, 4), (4, 16)):
                if values.get(a) and values.get(b):
                    self.row("7", f"growth x{a} -> x{b}: {label}", [values[b] / values[a]], unit="x")
        per_flag = medians["per_flag"]
        if per_flag.get(1) and per_flag.get(16):
            g = self.row(
                "7",
                "cost per flag, x16 over x1 (wall)",
                [per_flag[16] / per_flag[1]],
                unit="x",
                target=f"<= {TARGETS['cost_per_flag_growth']:g}x",
            )
            self.verdict("cost_per_flag", g, g["median"] <= TARGETS["cost_per_flag_growth"])
        elif scale and len(scale) > 1:
            self.verdicts["x16_full"] = self.verdicts.get("x16_full") or {
                "met": None,
                "value": None,
                "note": "x16 full run not measured",
            }

    def full_run(self, k: int, runs: Runs, medians: dict[str, dict[int, float]]) -> None:
        """The rows of one scale's full offline run, and at ×16 its two verdicts."""
        full = self.row(
            "7",
            f"x{k}: full offline run, cold",
            [x["cold"]["wall"] for x in runs],
            target=f"<= {TARGETS['x16_full_s']:g} s" if k == 16 else "",
        )
        medians["full"][k] = full["median"]
        flags = [x["cold"]["plan"].get("issues") for x in runs if x["cold"].get("plan")]
        if flags and flags[0]:
            per_flag = self.row(
                "7",
                f"x{k}: full run, ms per flag (wall)",
                [x["cold"]["wall"] / flags[0] * 1000 for x in runs],
                unit="ms",
                fmt="{:.3f}",
            )
            medians["per_flag"][k] = per_flag["median"]
            self.row(
                "7",
                f"x{k}: full run, CPU ms per flag",
                [x["cold"]["cpu_s"] / flags[0] * 1000 for x in runs if x["cold"].get("cpu_s")],
                unit="ms",
                fmt="{:.3f}",
            )
        self.megabytes(
            "7",
            f"x{k}: peak RSS of the Snakemake process",
            [x["cold"]["rss_mb"] for x in runs if x["cold"].get("rss_mb")],
        )
        # with its worker processes and scripts, at the same moment (sampled every 0.25 s;
        # never below the Snakemake process's own peak)
        rss = self.megabytes(
            "7",
            f"x{k}: peak RSS of the full run, all processes at once",
            [
                max(x["cold"]["rss_mb"], x["cold"].get("together_rss_mb") or 0.0)
                for x in runs
                if x["cold"].get("rss_mb")
            ],
            target=f"< {TARGETS['x16_rss_mb']:.0f} MB" if k == 16 else "",
        )
        if k == 16:
            self.verdict(
                "x16_full", full, full["median"] is not None and full["median"] <= TARGETS["x16_full_s"]
            )
            self.verdict("x16_rss", rss, rss["median"] is not None and rss["median"] < TARGETS["x16_rss_mb"])

    def requests(self) -> None:
        if "requests" not in self.r:
            return
        q = self.r["requests"]
        req = self.row(
            "8",
            f"Requests for the corpus, batch_size {q['batch_size']}",
            [q["batches"]],
            unit="",
            fmt="{:.0f}",
            target=f"<= {TARGETS['requests']}",
        )
        self.verdict("requests", req, q["batches"] <= TARGETS["requests"])
        ref = self.ref["requests"]
        self.count(
            "8",
            "  the earlier tool (10 flags per request"
            + (", counted by the emulator in this run)" if ref.same_run else "; the issue's number)"),
            [ref.value],
        )
        self.count("8", "  page-aligned batches (before)", [EARLIER["page_aligned_requests"]])
        self.row("8", "  flags per request, mean", [q["mean_batch"]], unit="")
        self.count("8", "  flags per request, largest", [q["max_batch"]])
        names = {"edit": "edits", "insert": "insertions", "delete": "deletions"}
        for kind, label in names.items():
            c = q[kind]
            # an edit re-sends exactly its own batch; an insertion or deletion at most two
            bound, field = (
                ("exactly 1 batch", "at_most_one") if kind == "edit" else ("at most 2 batches", "at_most_two")
            )
            share = c[field] * 100
            t = self.row(
                "8",
                f"  {label} re-sending {bound} (of {c['changes']})",
                [share],
                unit="%",
                fmt="{:.1f}",
                target="100%",
            )
            t["met"] = c[field] == 1.0 and (kind != "edit" or c["max"] == 1)
            self.verdicts[f"{kind}_locality"] = {"met": t["met"], "value": share}
            if kind != "edit":
                self.count("8", f"  {label}: most batches re-sent", [c["max"]])

    def rate_limit(self) -> None:
        if "limit" not in self.r:
            return
        q = self.r["limit"]
        runs = q["runs"]
        self.row(
            "9",
            f"Rate-limited API ({q['rpm']}/min, {q['latency_s']:g} s + {q['per_item_s']:g} s/flag): wall",
            [x["run"]["wall"] for x in runs],
        )
        self.count("9", "  requests answered", [x["answered"] for x in runs])
        self.count("9", "  429 answers", [x["rate_limited"] for x in runs])
        self.row(
            "9", "  throughput, whole run", [x["overall_rpm"] for x in runs], unit="req/min", fmt="{:.0f}"
        )
        self.row(
            "9",
            f"  throughput after the first {q['window_s']:g} s",
            [x["steady_rpm"] for x in runs],
            unit="req/min",
            fmt="{:.0f}",
        )
        share = self.row(
            "9",
            "  share of the API's limit (after the first window)",
            [x["steady_rpm"] / q["rpm"] for x in runs if x["steady_rpm"]],
            unit="",
            target=f">= {TARGETS['limit_share']:g}",
        )
        self.verdict(
            "limit", share, share["median"] is not None and share["median"] >= TARGETS["limit_share"]
        )
