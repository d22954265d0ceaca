"""Headless Chromium as the tests and benchmarks drive it: Debian's package, never a download.

One place for the executable and its arguments, so that the browser test of the HTML report and
``benchmarks/bench_report.py`` measure the same browser.
"""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
