"""The results view: LanguageTool feedback, safe embedding, the workbook (read back with pandas)."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import copy_sample
from support.workflow import snakemake

from llm_categoriser.errors import ReportError
from llm_categoriser.outputs import read_csv
from llm_categoriser.results_view.flags import Flag, load_flags
from llm_categoriser.results_view.html_report import embed_json, render_report
from llm_categoriser.results_view.lt_feedback import (
    MIN_RULE_FLAGS,
    MIN_RULE_SHARE,
    MIN_WORD_CONFIDENCE,
    rule_counts,
    rules_to_disable,
    spelling_words,
)
from llm_categoriser.results_view.workbook import EXCEL_CELL_LIMIT, sheet_names


def flag(issue: str, category: str, confidence: int | None = 90, **extra: str) -> Flag:
    fields = {
        "subject": "Geography",
        "filename": "doc.md",
        "issue": issue,
        "error_category": category,
        "confidence_score": confidence,
        "rule_id": "MORFOLOGIK_RULE_EN_GB",
        "type": "misspelling",
        "status": "ok",
    }
    return Flag(**(fields | extra))


# --- LanguageTool feedback -------------------------------------------------------------------


def test_spelling_words_needs_a_confident_false_positive_and_no_dissent():
    flags = [
        flag("Eryri", "FALSE_POSITIVE", MIN_WORD_CONFIDENCE),
        flag("cynefin", "FALSE_POSITIVE", MIN_WORD_CONFIDENCE - 1),  # not confident enough
        flag("Ynys", "FALSE_POSITIVE", 95),
        flag("ynys", "SPELLING_ERROR", 60),  # one dissent (any case) keeps it out
        flag("recieve", "SPELLING_ERROR", 95),
        flag("Llyn", "FALSE_POSITIVE", 99, type="grammar"),  # not a spelling rule
        flag("Tryfan", "FALSE_POSITIVE", 99, status="failed"),  # no answer
    ]
    assert spelling_words(flags) == ["Eryri"]


def test_spelling_words_refuses_what_is_not_a_word():
    odd = ["i", "two words", "qualiﬁcation", "learnersâ€", "1990", "x�y", "<script>"]
    flags = [flag(w, "FALSE_POSITIVE", 99) for w in [*odd, "Môn", "cân", "ŵyr", "don't", "e-bost"]]
    assert spelling_words(flags) == ["cân", "don't", "e-bost", "Môn", "ŵyr"]


def test_rules_to_disable_needs_enough_flags_and_a_high_share():
    flags = [flag("a", "FALSE_POSITIVE", rule_id="NEARLY_ALWAYS", type="style") for _ in range(9)]
    flags += [flag("a", "STYLISTIC_PREFERENCE", rule_id="NEARLY_ALWAYS", type="style")]
    flags += [flag("b", "FALSE_POSITIVE", rule_id="TOO_FEW") for _ in range(MIN_RULE_FLAGS - 1)]
    flags += [flag("c", "FALSE_POSITIVE", rule_id="MIXED") for _ in range(6)]
    flags += [flag("c", "SPELLING_ERROR", rule_id="MIXED") for _ in range(4)]
    flags += [flag("d", "", None, rule_id="NEARLY_ALWAYS", status="failed")]  # not counted
    counts = {c.rule_id: c for c in rule_counts(flags)}
    assert (counts["NEARLY_ALWAYS"].flags, counts["NEARLY_ALWAYS"].false_positives) == (10, 9)
    assert [c.rule_id for c in rules_to_disable(counts.values())] == ["NEARLY_ALWAYS"]
    assert counts["NEARLY_ALWAYS"].share >= MIN_RULE_SHARE > counts["MIXED"].share


# --- the HTML page -----------------------------------------------------------------------------


def test_embedded_json_cannot_close_the_script_element():
    hostile = {"issue": "</script><script>alert(1)</script><!--", "x": "\u2028&"}
    text = embed_json(hostile)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == hostile


def test_page_allows_only_its_own_scripts_by_hash():
    import base64
    import hashlib

    payload = {"rows": [], "issue": "<img src=x onerror=alert(1)>"}
    html = render_report(payload)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 3
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    allowed = set(re.findall(r"'sha256-([^']+)'", policy))
    assert allowed == {base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in scripts}
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "<img" not in html.split('id="report-data">')[1].split("</script>")[0]


def test_report_script_never_writes_html():
    script = (Path(__file__).parents[1] / "llm_categoriser/results_view/assets/report.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)


def test_a_broken_combined_csv_names_the_file_and_line(tmp_path):
    path = tmp_path / "combined-report.csv"
    path.write_text("subject,filename,confidence_score\nGeo,a.md,85\nGeo,b.md,high\n", encoding="utf-8")
    with pytest.raises(ReportError, match=r"combined-report.csv line 3: column 'confidence_score'"):
        load_flags(path)


def test_sheet_names_are_valid_and_unique():
    names = sheet_names(["Art/Design", "A" * 40, "A" * 40 + "b", "Summary"])
    assert all(len(n) <= 31 and not re.search(r"[\[\]:*?/\\]", n) for n in names.values())
    assert len({n.casefold() for n in names.values()}) == 4 and "summary" not in {
        n.casefold() for n in names.values()
    }


# --- on a real run of the sample corpus -------------------------------------------------------


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("results")
    docs = copy_sample(work)
    report = docs / "language-check-report.csv"
    text = report.read_text(encoding="utf-8")
    # a flag that a spreadsheet would run as a formula and one longer than an Excel cell holds
    first = text.splitlines()[1].split(",")
    formula = [*first[:5], '"=HYPERLINK(""http://example.invalid"")"', *first[6:]]
    long = [*first[:6], "x" * (EXCEL_CELL_LIMIT + 100), *first[7:]]
    report.write_text(text + ",".join(formula) + "\n" + ",".join(long) + "\n", encoding="utf-8")
    snakemake(work)
    return work


@pytest.mark.slow
def test_workbook_matches_the_combined_csv(sample_run):
    import pandas as pd

    docs = sample_run / "Documents"
    combined = read_csv(docs / "combined-report.csv")
    sheets = pd.read_excel(docs / "triage.xlsx", sheet_name=None, dtype=str, keep_default_na=False)
    subjects = sorted({r["subject"] for r in combined})
    assert list(sheets) == ["Summary", *sheet_names(subjects).values()]
    for subject, name in sheet_names(subjects).items():
        expected = [r for r in combined if r["subject"] == subject]
        got = sheets[name].to_dict("records")
        assert len(got) == len(expected), subject
        for want, have in zip(expected, got, strict=True):
            for column, value in have.items():
                if column == "confidence_score":
                    assert value == want[column]
                elif len(want[column]) > EXCEL_CELL_LIMIT:
                    assert len(value) == EXCEL_CELL_LIMIT and value.endswith("the full text is in the CSV]")
                else:
                    assert value == want[column], (subject, column)
    assert any(
        r["issue"].startswith("=HYPERLINK")
        for s in sheets.values()
        for r in s.to_dict("records")
        if "issue" in r
    )

    raw = pd.read_excel(
        docs / "triage.xlsx", sheet_name="Summary", header=None, dtype=str, keep_default_na=False
    )
    blocks = summary_blocks(raw.values.tolist())
    want_categories: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    want_statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in combined:
        want_statuses[r["subject"]][r["status"]] += 1
        if r["status"] in {"ok", "repaired"} and r["error_category"]:
            want_categories[r["subject"]][r["error_category"]] += 1
    for subject in subjects:
        got = {k: int(v) for k, v in blocks["Categories by subject"][subject].items()}
        assert got.pop("total") == sum(want_categories[subject].values())
        assert {k: v for k, v in got.items() if v} == want_categories[subject]
        got = {k: int(v) for k, v in blocks["Status by subject"][subject].items() if v}
        assert {k: v for k, v in got.items() if v} == want_statuses[subject]
    run = blocks["Run"]
    assert run["issues"]["value"] == str(len(combined))


def _workbook_parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as book:
        return {name: book.read(name) for name in book.namelist() if name != "docProps/core.xml"}


def test_workbook_columns_are_the_same_bytes_as_cell_by_cell_writes(tmp_path, monkeypatch):
    """The workbook's sheets store whole columns and write plain cells in one loop
    (``table_sheet.TableSheet``): the file is the same, part for part, as the one XlsxWriter's
    own worksheet makes from one ``write_string``/``write_number`` call per cell, including
    blanks, numbers, formula-like text, a formatted title and strings long enough for the
    library's own UTF-16 check (one over Excel's limit only in UTF-16 units)."""
    from xlsxwriter.worksheet import Worksheet

    from llm_categoriser.results_view import table_sheet
    from llm_categoriser.results_view.workbook import write_workbook

    flags = [
        flag(
            f"word{i}",
            ["FALSE_POSITIVE", "SPELLING_ERROR", ""][i % 3],
            i % 101 if i % 7 else None,
            subject=["Geography", "Art & Design", "Welsh"][i % 3],
            reasoning="" if i % 5 else "=SUM(A1)",
            message="m" * (i % 40),
            status=["ok", "failed", "repaired"][i % 3],
        )
        for i in range(700)
    ]
    flags.append(flag("astral", "FALSE_POSITIVE", highlighted_context="\U0001f600" * 20_000))
    flags.append(flag("long", "FALSE_POSITIVE", message="x" * (EXCEL_CELL_LIMIT + 10)))
    summary = {
        "issues": len(flags),
        "started_at": "2025-01-01T00:00:00",
        "flag": True,
        "none": None,
        "costs": {"gemini": 0.5, "offline": 0},
    }

    write_workbook(tmp_path / "columns.xlsx", flags, summary)

    class CellByCell(Worksheet):
        def write_column(self, first_row: int, col: int, values: list) -> None:
            for row, value in enumerate(values, first_row):
                if isinstance(value, str):
                    if value:
                        self.write_string(row, col, value)
                elif value is not None:
                    self.write_number(row, col, value)

    monkeypatch.setattr(table_sheet, "TableSheet", CellByCell)
    write_workbook(tmp_path / "cells.xlsx", flags, summary)
    columns, cells = _workbook_parts(tmp_path / "columns.xlsx"), _workbook_parts(tmp_path / "cells.xlsx")
    assert list(columns) == list(cells)
    for name in cells:
        assert columns[name] == cells[name], name


def summary_blocks(cells: list[list[str]]) -> dict[str, dict[str, dict[str, str]]]:
    """The Summary sheet's titled tables: {title: {first cell of a row: {column: value}}}."""
    blocks: dict[str, dict[str, dict[str, str]]] = {}
    i = 0
    while i < len(cells):
        title = cells[i][0]
        if title and not any(cells[i][1:]):
            header = cells[i + 1]
            rows: dict[str, dict[str, str]] = {}
            i += 2
            while i < len(cells) and any(cells[i]):
                rows[cells[i][0]] = {h: v for h, v in zip(header[1:], cells[i][1:], strict=True) if h}
                i += 1
            blocks[title] = rows
        i += 1
    return blocks


@pytest.mark.slow
def test_workbook_is_laid_out_for_people(sample_run):
    from openpyxl import load_workbook

    book = load_workbook(sample_run / "Documents" / "triage.xlsx")
    for sheet in book.worksheets[1:]:
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}{sheet.max_row}"
        widths = [sheet.column_dimensions[c.column_letter].width for c in sheet[1]]
        assert all(8 <= w <= 61 for w in widths), widths
        formulas = [c for row in sheet.iter_rows() for c in row if c.data_type == "f"]
        assert not formulas


@pytest.mark.slow
def test_word_lists_follow_the_answers(sample_run):
    docs = sample_run / "Documents"
    combined = read_csv(docs / "combined-report.csv")
    answers: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in combined:
        if r["type"] == "misspelling" and r["status"] in {"ok", "repaired"}:
            answers[(r["subject"], r["issue"].casefold())].append(r)
    listed_total = 0
    for subject in {r["subject"] for r in combined}:
        lines = (docs / "languagetool" / subject / "spelling.txt").read_text(encoding="utf-8").splitlines()
        words = [line for line in lines if line and not line.startswith("#")]
        listed_total += len(words)
        for word in words:
            rows = answers[(subject, word.casefold())]
            assert rows and all(r["error_category"] == "FALSE_POSITIVE" for r in rows), (subject, word)
            assert max(int(r["confidence_score"]) for r in rows) >= MIN_WORD_CONFIDENCE
        # and every word that qualifies is listed
        qualifying = {
            rows[0]["issue"]
            for (s, _), rows in answers.items()
            if s == subject
            and all(r["error_category"] == "FALSE_POSITIVE" for r in rows)
            and max(int(r["confidence_score"]) for r in rows) >= MIN_WORD_CONFIDENCE
            and re.fullmatch(r"[^\W\d_][\w'’.\-]*[^\W_]", rows[0]["issue"])
            and not re.search("[\ufb00-\ufb4f\ufffd]|â€", rows[0]["issue"])
        }
        assert {w.casefold() for w in words} == {w.casefold() for w in qualifying}, subject
    assert listed_total > 0

    rules_lines = (docs / "languagetool" / "disable-rules.txt").read_text(encoding="utf-8").splitlines()
    listed = {line.split("\t")[0]: line.split("\t")[1:] for line in rules_lines if not line.startswith("#")}
    for rule_id, (fp, n) in listed.items():
        rows = [r for r in combined if r["rule_id"] == rule_id and r["status"] in {"ok", "repaired"}]
        assert int(n) == len(rows) >= MIN_RULE_FLAGS
        assert (
            int(fp)
            == sum(r["error_category"] == "FALSE_POSITIVE" for r in rows)
            >= MIN_RULE_SHARE * len(rows)
        )


def test_write_csv_with_a_byte_order_mark_round_trips(tmp_path):
    from llm_categoriser.outputs import write_csv

    path = tmp_path / "x.csv"
    write_csv(path, ["issue", "reasoning"], [{"issue": "qualiﬁcation", "reasoning": "=1+1"}], bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfissue,reasoning\n")
    assert read_csv(path) == [{"issue": "qualiﬁcation", "reasoning": "=1+1"}]


@pytest.mark.slow
def test_csv_bom_option_rebuilds_the_csvs_with_a_bom(sample_run):
    from llm_categoriser.outputs import LEGACY_COLUMNS

    docs = sample_run / "Documents"
    before = read_csv(docs / "combined-report.csv")
    snakemake(sample_run, "--forcerun", "merge", "--config", "csv_bom=true")
    csvs = [docs / "combined-report.csv", *docs.glob("*/document_reports/*.csv")]
    for path in csvs:
        head = path.read_bytes()[:200]
        assert head.startswith(b"\xef\xbb\xbf"), path
    first = next(docs.glob("*/document_reports/*.csv")).read_text(encoding="utf-8-sig").splitlines()[0]
    assert first.split(",")[:8] == list(LEGACY_COLUMNS)
    assert read_csv(docs / "combined-report.csv") == before
    assert len(load_flags(docs / "combined-report.csv")) == len(before)  # the view reads it too


@pytest.mark.slow
def test_snakemake_report_carries_the_html_report_with_its_caption(sample_run):
    import zipfile

    snakemake(sample_run, "--report", "report.zip")
    with zipfile.ZipFile(sample_run / "report.zip") as archive:
        names = archive.namelist()
        carried = [n for n in names if n.endswith("/report.html") and "/data/raw/" in n]
        assert carried, names
        assert b"FALSE_POSITIVE" in archive.read(carried[0])
        assert b"self-contained page" in archive.read("report/report.html")  # the caption


def test_run_times_give_start_end_and_duration():
    from datetime import UTC, datetime

    from llm_categoriser.outputs import run_times

    now = datetime(2026, 1, 2, 3, 5, 6, tzinfo=UTC)
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert run_times(started, now) == {
        "finished_at": "2026-01-02T03:05:06+00:00",
        "started_at": "2026-01-02T03:04:05+00:00",
        "duration_seconds": 61.0,
    }
    assert run_times(None, now) == {"finished_at": "2026-01-02T03:05:06+00:00"}


@pytest.mark.slow
def test_run_summary_is_indented_and_timed(sample_run):
    from datetime import datetime

    text = (sample_run / "Documents" / "run-summary.json").read_text(encoding="utf-8")
    assert text.startswith('{\n  "documents": ')
    summary = json.loads(text)
    started = datetime.fromisoformat(summary["started_at"])
    finished = datetime.fromisoformat(summary["finished_at"])
    assert started <= finished and summary["duration_seconds"] == pytest.approx(
        (finished - started).total_seconds(), abs=1.0
    )


def test_nested_summary_records_are_opened_one_level_in_the_run_table():
    from llm_categoriser.results_view.report_data import _extra_summary

    rows = _extra_summary(
        {
            "issues": 3,  # shown elsewhere
            "this_run": {"requests_sent": 2, "usage": {"input_tokens": 10}, "deep": {"x": {"y": 1}}},
            "cascaded": 0,
        }
    )
    assert rows == [
        ["this_run: requests_sent", 2],
        ["this_run: usage", {"input_tokens": 10}],
        ["cascaded", 0],
    ]


def _view_files(documents: Path) -> dict[str, bytes]:
    """The results view's files (the workbook's parts, less its creation time)."""
    feedback = sorted((documents / "languagetool").rglob("*.txt"))
    files = {str(p.relative_to(documents)): p.read_bytes() for p in feedback}
    assert feedback
    files["report.html"] = (documents / "report.html").read_bytes()
    with zipfile.ZipFile(documents / "triage.xlsx") as book:
        for name in book.namelist():
            if name != "docProps/core.xml":
                files[f"triage.xlsx:{name}"] = book.read(name)
    return files


def _view_removed(sample_run, tmp_path):
    """A copy of the sample run's documents without its results view: the folder, the view's
    files as the run wrote them, the settings and the subjects, to write the view again."""
    from llm_categoriser.settings import resolve

    documents = tmp_path / "Documents"
    shutil.copytree(sample_run / "Documents", documents)
    written_by_the_run = _view_files(documents)
    (documents / "triage.xlsx").unlink()
    (documents / "report.html").unlink()
    shutil.rmtree(documents / "languagetool")
    settings = resolve({"documents_dir": str(documents), "data_dir": str(tmp_path / "data")}, env={})
    subjects = sorted({r["subject"] for r in read_csv(documents / "combined-report.csv")})
    return documents, written_by_the_run, settings, subjects


@pytest.mark.slow
def test_a_large_run_writes_the_workbook_beside_the_rest_and_the_same(sample_run, tmp_path, monkeypatch):
    """In a large run (jobs in worker processes) the workbook is written in a process of its
    own while the job's thread writes the rest: the same files as one thread writes."""
    from llm_categoriser import workers
    from llm_categoriser.results_view import build

    documents, written_by_the_run, settings, subjects = _view_removed(sample_run, tmp_path)

    def not_here(*args, **kwargs):
        raise AssertionError("the workbook was written in the job's thread")

    monkeypatch.setattr(build, "write_workbook", not_here)  # a spawned worker imports its own
    monkeypatch.setattr(workers, "cores", lambda: 2)
    monkeypatch.chdir(tmp_path)  # the report's links are relative to the working folder
    workers.use_for_jobs(True)
    try:
        build.run_results_view(settings.layout, subjects, str(tmp_path / "results_view.log"))
    finally:
        workers.use_for_jobs(False)
    assert _view_files(documents) == written_by_the_run
    assert "in a worker process" in (tmp_path / "results_view.log").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_batch_run_writes_the_workbook_in_its_helper_and_the_same(sample_run, tmp_path, monkeypatch):
    """With the forked helper of a batch-mode run alive, the helper writes the workbook while the
    job's thread writes the rest: the same files as one thread writes."""
    from llm_categoriser import remote_helper
    from llm_categoriser.results_view import build

    documents, written_by_the_run, settings, subjects = _view_removed(sample_run, tmp_path)
    monkeypatch.chdir(tmp_path)  # the report's links are relative to the working folder
    monkeypatch.setattr(remote_helper.threading, "active_count", lambda: 1)  # pytest's threads
    assert remote_helper.start(lambda: None, cores=2)

    def not_here(*args, **kwargs):
        raise AssertionError("the workbook was written in the job's thread")

    monkeypatch.setattr(build, "write_workbook", not_here)  # after the fork: the helper has its own
    try:
        build.run_results_view(settings.layout, subjects, str(tmp_path / "results_view.log"))
    finally:
        remote_helper.stop()
    assert _view_files(documents) == written_by_the_run
    assert "in the helper process" in (tmp_path / "results_view.log").read_text(encoding="utf-8")
