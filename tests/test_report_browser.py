"""The HTML report in a real browser: headless Chromium (Debian's package) driven by Playwright.

Checks the report of the sample run (rows, filters, console, no network) and saves a screenshot
of it; then a report built from hostile flag text. The screenshot goes to the test's temporary
folder; with UPDATE_SCREENSHOT=1 it replaces the one the README shows (docs/report.png), so a
plain `make test` leaves the working tree clean.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, copy_sample
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.workflow import snakemake

from llm_categoriser.outputs import COMBINED_COLUMNS, read_csv, render_csv

README_SCREENSHOT = REPO / "docs" / "report.png"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM} (.ci/run installs it)"
    ),
]


class Page:
    """A page with what it logged and what it asked the network for."""

    def __init__(self, context, url: str) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = context.new_page()
        self.page.on(
            "console", lambda m: self.errors.append(m.text) if m.type in {"error", "warning"} else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready='1']", timeout=60_000)

    def shown(self) -> int:
        """Rows that pass the filters, once the page has applied them (typing is debounced)."""
        self.page.wait_for_function("() => !document.body.dataset.pending")
        count = int(self.page.evaluate("window.triageReport.table.getDataCount('active')"))
        assert self.page.evaluate("document.body.dataset.shown") == str(count)
        return count

    def search(self, text: str) -> int:
        self.page.fill("#f-search", text)
        return self.shown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,  # never a browser of Playwright's own
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("report")
    copy_sample(work)
    snakemake(work)
    return work / "Documents"


def searchable(row: dict[str, str]) -> str:
    fields = (
        "issue",
        "highlighted_context",
        "reasoning",
        "rule_id",
        "message",
        "suggestions",
        "filename",
        "error",
    )
    return "\x01".join(row[f] for f in fields).lower()


def test_sample_report_rows_filters_and_screenshot(browser, sample_report, tmp_path):
    combined = read_csv(sample_report / "combined-report.csv")
    url = (sample_report / "report.html").as_uri()
    page = Page(browser, url)
    assert page.shown() == len(combined)
    assert page.page.text_content("#f-count") == f"{len(combined)} of {len(combined)} flags"
    rendered = page.page.locator("#flags-table .tabulator-row").count()
    assert 0 < rendered <= len(combined)  # virtual rendering: only what is near the viewport

    screenshot = README_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "report.png"
    page.page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000  # a rendered page, not an empty canvas

    word = "eryri"
    narrowed = page.search(word)
    assert 0 < narrowed < len(combined)
    assert narrowed == sum(word in searchable(r) for r in combined)
    # Markdown bold around LanguageTool's own ** markers ("****Kyffin** Williams**"): the
    # flagged word is the one marked, not its neighbour
    assert page.search("kyffin") > 0
    assert page.page.locator("#flags-table .tabulator-row .ctx mark").first.inner_text() == "Kyffin"
    page.search("")
    page.page.select_option("#f-category", "FALSE_POSITIVE")
    false_positives = sum(r["error_category"] == "FALSE_POSITIVE" for r in combined)
    assert page.shown() == false_positives < len(combined)
    page.page.fill("#f-min", "80")
    assert page.shown() == sum(
        r["error_category"] == "FALSE_POSITIVE" and int(r["confidence_score"]) >= 80 for r in combined
    )
    subject = combined[0]["subject"]
    page.page.select_option("#f-subject", subject)
    documents = page.page.eval_on_selector_all("#f-document option", "els => els.slice(1).map(e => e.value)")
    assert set(documents) == {r["filename"] for r in combined if r["subject"] == subject}
    page.page.click("#f-reset")
    assert page.shown() == len(combined)

    page.page.click(".tabulator-col[tabulator-field='confidence'] .tabulator-col-title")
    first = page.page.evaluate("window.triageReport.table.getRows('active')[0].getData().confidence")
    assert first == min(int(r["confidence_score"]) for r in combined)

    link = page.page.get_attribute("#flags-table .tabulator-row a", "href")
    assert (sample_report / link).is_file() and link.endswith(".csv")
    assert page.page.locator("#chart-subjects").bounding_box()["height"] > 100
    run = page.page.inner_text("#run-table")  # the nested spend records, opened one level
    assert "Spend: requests sent" in run and "This run: cost usd\t$0.0000" in run
    assert page.errors == []
    assert page.requests == [url]  # nothing fetched: the page is self-contained


HOSTILE = [
    ("<script>window.__pwned = 1</script>", "see **<script>window.__pwned = 1</script>** here"),
    ('<img src=x onerror="window.__pwned = 2">', 'an **<img src=x onerror="window.__pwned = 2">** tag'),
    ("Eryri", '**Eryri**" onmouseover="window.__pwned = 3'),
]


def hostile_report(folder: Path, summary: dict) -> Path:
    from llm_categoriser.layout import Layout
    from llm_categoriser.results_view.build import run_results_view

    layout = Layout(str(folder / "Documents"), str(folder / "data"))
    rows = []
    for n, (issue, context) in enumerate(HOSTILE, start=1):
        rows.append(
            {
                "subject": "<b>Subject</b>",
                "filename": "javascript:alert(1).md",
                "issue_id": n,
                "issue": issue,
                "highlighted_context": context,
                "error_category": "FALSE_POSITIVE",
                "confidence_score": 90,
                "reasoning": '<a href="javascript:window.__pwned=4">reason</a>',
                "rule_id": "<i>RULE</i>",
                "type": "misspelling",
                "status": "ok" if n < 3 else "failed",
                "error": "<u>error</u>" if n == 3 else "",
            }
        )
    Path(layout.combined_csv).parent.mkdir(parents=True)
    Path(layout.combined_csv).write_text(render_csv(COMBINED_COLUMNS, rows), encoding="utf-8")
    Path(layout.summary).write_text(json.dumps(summary), encoding="utf-8")
    run_results_view(layout, ["<b>Subject</b>"], str(folder / "view.log"))
    return Path(layout.report_html)


def test_hostile_text_is_shown_as_text_and_runs_nothing(browser, tmp_path):
    summary = {"issues": 3, "requests_reused": 12, "cost_by_provider": {"<b>gemini</b>": 0.25}}
    page = Page(browser, hostile_report(tmp_path, summary).as_uri())
    assert page.shown() == 3
    for cell in page.page.locator("#flags-table .tabulator-cell").all():
        cell.hover()  # an injected onmouseover would run now
    assert page.page.evaluate("window.__pwned") is None
    assert (
        page.page.evaluate(
            "document.querySelectorAll('main b, main i, main u, main img, main script').length"
        )
        == 0
    )
    text = page.page.inner_text("#flags-table")
    for issue, _ in HOSTILE:
        assert issue in text
    assert '<a href="javascript:window.__pwned=4">reason</a>' in text
    href = page.page.get_attribute("#flags-table .tabulator-row a", "href")
    assert not href.lower().startswith("javascript:")
    assert page.page.locator(".tabulator-row.flag-failed").count() == 1
    run = page.page.inner_text("#run-table")
    assert "Requests reused\t12" in run and "<b>gemini</b>: $0.2500" in run
    assert page.errors == []


def test_a_summary_without_optional_fields_still_renders(browser, tmp_path):
    page = Page(browser, hostile_report(tmp_path, {}).as_uri())
    assert page.shown() == 3
    assert page.errors == []
