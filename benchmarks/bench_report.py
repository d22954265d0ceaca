#!/usr/bin/env python
"""How long the results view takes to write, and Chromium to open and filter the report.

Usage::

    python benchmarks/bench_report.py [--run DIR] [--corpus ../shared/corpus] [--scales 1,4] [--reps 3]

Without ``--run`` it first runs the offline workflow on a temporary copy of
``<corpus>/Documents``; with ``--run DIR`` it uses that finished run (``DIR/Documents``). For
each scale k it writes, in a temporary folder, a combined CSV holding every row k times and
times ``run_results_view`` (report, workbook, word lists), then opens the report in headless
Chromium (``/usr/bin/chromium``, a fresh profile) ``--reps`` times: load = navigation start to
the table being built (the page's own clock), filter = typing ``welsh`` into the search box until
the next frame has been drawn, category = choosing a category in the same way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from llm_categoriser.layout import Layout  # noqa: E402
from llm_categoriser.outputs import COMBINED_COLUMNS, read_csv, render_csv  # noqa: E402
from llm_categoriser.results_view.build import run_results_view  # noqa: E402
from llm_categoriser.results_view.flags import load_flags, load_summary  # noqa: E402
from llm_categoriser.results_view.html_report import write_report  # noqa: E402
from llm_categoriser.results_view.lt_feedback import subject_feedback  # noqa: E402
from llm_categoriser.results_view.report_data import report_payload  # noqa: E402

MEASURE = """async ([id, value]) => {
  const t = performance.now();
  const control = document.getElementById(id);
  control.value = value;
  window.triageReport.applyFilters();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return [performance.now() - t, window.triageReport.table.getDataCount('active')];
}"""


def run_workflow(corpus: Path, work: Path) -> Path:
    shutil.copytree(corpus / "Documents", work / "Documents")
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=work)
    return work / "Documents"


def scaled(docs: Path, folder: Path, k: int) -> tuple[Layout, list[str]]:
    """A layout in ``folder`` whose combined CSV holds every row of the run ``k`` times."""
    rows = read_csv(docs / "combined-report.csv")
    out = []
    for copy in range(k):
        for row in rows:
            out.append(row | ({"issue_id": f"{row['issue_id']}-{copy}"} if copy else {}))
    layout = Layout(str(folder / "Documents"), str(folder / "data"))
    Path(layout.combined_csv).parent.mkdir(parents=True)
    Path(layout.combined_csv).write_text(render_csv(COMBINED_COLUMNS, out), encoding="utf-8")
    summary = json.loads((docs / "run-summary.json").read_text(encoding="utf-8"))
    summary["issues"] = len(out)
    Path(layout.summary).write_text(json.dumps(summary), encoding="utf-8")
    return layout, sorted({r["subject"] for r in rows})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--scales", default="1,4")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    chromium = CHROMIUM
    if not Path(chromium).exists():
        print(f"Chromium not found at {chromium}; apt-get install chromium")
        return 0
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        if args.run:
            docs = args.run / "Documents"
        elif (args.corpus / "Documents" / "language-check-report.csv").exists():
            docs = run_workflow(args.corpus, root / "run")
        else:
            print(f"reference corpus not found at {args.corpus}; nothing measured")
            return 0
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(root / "profile"), executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            for k in (int(s) for s in args.scales.split(",")):
                layout, subjects = scaled(docs, root / f"x{k}", k)
                started = time.perf_counter()
                run_results_view(layout, subjects, str(root / f"x{k}.log"))
                written = time.perf_counter() - started
                started = time.perf_counter()
                flags = load_flags(layout.combined_csv)
                payload = report_payload(
                    flags, load_summary(layout.summary), subject_feedback(flags), [], root, layout
                )
                size = write_report(root / f"x{k}-report-only.html", payload)
                html_seconds = time.perf_counter() - started
                loads, searches, categories = [], [], []
                for _ in range(args.reps):
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
                    page.goto(Path(layout.report_html).resolve().as_uri())
                    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                    loads.append(int(page.evaluate("document.body.dataset.readyMs")) / 1000)
                    ms, shown = page.evaluate(MEASURE, ["f-search", "welsh"])
                    searches.append(ms / 1000)
                    page.evaluate("document.getElementById('f-search').value = ''")
                    ms, shown_cat = page.evaluate(MEASURE, ["f-category", "SPELLING_ERROR"])
                    categories.append(ms / 1000)
                    if errors:
                        print(f"  console errors: {errors[:3]}")
                    page.close()
                print(
                    f"x{k}: {len(flags)} flags; report {size:,} bytes written in {html_seconds:.2f} s "
                    "(CSV read included) "
                    f"(report, workbook and word lists {written:.2f} s); Chromium median of {args.reps}: "
                    f"load {statistics.median(loads):.2f} s (min {min(loads):.2f}, max {max(loads):.2f}), "
                    f"search filter {statistics.median(searches) * 1000:.0f} ms ({shown} rows), "
                    f"category filter {statistics.median(categories) * 1000:.0f} ms ({shown_cat} rows)"
                )
            context.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
