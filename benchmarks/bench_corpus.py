"""Benchmark corpora built on the fly from the reference corpus (never inside the repository).

* ``master_copy``: one real copy of ``<corpus>/Documents`` in the benchmark's temp folder;
  every work folder is then a tree of hard links to it (the pipeline only reads the Markdown
  and the report, and every edit below replaces a file instead of writing into it).
* ``scaled_corpus``: ×k issues and documents: each subject ``S`` gets k-1 duplicates
  ``S-x2`` … ``S-xk`` (same Markdown under a new subject folder) and the report rows are
  repeated with the subject rewritten.
* ``subset_corpus``: the first subjects (by name) holding at least N batches, for the
  concurrency comparison.
* ``edit_one_issue``: changes the Issue text of the middle row of the document with the most
  flags.
* ``fabricate_outputs``: a finished sync run's outputs for a scaled corpus, copied from the
  ×1 run under the duplicate subjects' paths, with modification times in rule order; used for
  the no-op measurement of a size whose full run is too long to perform.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from bench_support import REPO

REPORT = "language-check-report.csv"


def find_corpus(explicit: str | None) -> Path | None:
    candidates = [
        explicit,
        os.environ.get("BENCH_CORPUS"),
        str(REPO.parent / "shared" / "corpus"),
        "/work/shared/corpus",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "Documents" / REPORT).is_file():
            return Path(candidate)
    return None


def _link_tree(src: Path, dst: Path) -> None:
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)


def master_copy(corpus: Path, root: Path) -> Path:
    """A real copy of Documents/ (only the report and the Markdown) under ``root``."""
    target = root / "master" / "Documents"
    if not target.exists():
        shutil.copytree(
            corpus / "Documents",
            target,
            ignore=shutil.ignore_patterns("document_reports", "combined-report.csv", "run-summary.json"),
        )
    return target


def new_workdir(documents: Path, path: Path) -> Path:
    """A fresh work folder: hard-linked Documents/ plus the repository's config.yaml."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    _link_tree(documents, path / "Documents")
    shutil.copy(REPO / "config.yaml", path / "config.yaml")
    return path


def read_report(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_report(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)  # a new inode: the hard-linked master stays untouched


def scaled_corpus(master: Path, factor: int, root: Path) -> Path:
    """Documents/ with every subject (folder and report rows) present ``factor`` times."""
    target = root / f"scale-x{factor}" / "Documents"
    if target.exists():
        return target
    _link_tree(master, target)
    header, rows = read_report(master / REPORT)
    col = header.index("Subject")
    subjects = sorted({r[col] for r in rows})
    out = list(rows)
    for copy in range(2, factor + 1):
        for subject in subjects:
            src = master / subject
            if src.is_dir():
                _link_tree(src, target / f"{subject}-x{copy}")
        for row in rows:
            dup = list(row)
            dup[col] = f"{row[col]}-x{copy}"
            out.append(dup)
    write_report(target / REPORT, header, out)
    return target


def subset_corpus(master: Path, subjects: list[str], root: Path, name: str) -> Path:
    target = root / name / "Documents"
    if target.exists():
        return target
    target.mkdir(parents=True)
    for subject in subjects:
        _link_tree(master / subject, target / subject)
    header, rows = read_report(master / REPORT)
    col = header.index("Subject")
    write_report(target / REPORT, header, [r for r in rows if r[col] in set(subjects)])
    return target


def edit_one_issue(documents: Path) -> dict[str, Any]:
    """Change the Issue text of the middle row of the document with the most flags."""
    report = documents / REPORT
    header, rows = read_report(report)
    s, f, i = header.index("Subject"), header.index("Filename"), header.index("Issue")
    counts = Counter((r[s], r[f]) for r in rows)
    (subject, filename), n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    indexes = [k for k, r in enumerate(rows) if (r[s], r[f]) == (subject, filename)]
    row = indexes[len(indexes) // 2]
    old = rows[row][i]
    rows[row][i] = old + " edited"
    write_report(report, header, rows)
    return {
        "subject": subject,
        "filename": filename,
        "document_flags": n,
        "row_in_document": len(indexes) // 2 + 1,
        "report_row": row + 2,
        "issue_before": old,
        "issue_after": rows[row][i],
    }


def fabricate_outputs(done: Path, target: Path, factor: int) -> int:
    """Give ``target`` (×factor of ``done``'s corpus, plan already written) a finished state.

    Copies every output of the finished ×1 run ``done`` (results, merged stats, document CSVs,
    the combined report and summary) to the paths of each duplicate subject, then sets the
    modification times in rule order (planning files < results < merged < combined < results
    view) so that Snakemake sees an up-to-date workflow. Returns the number of files written.
    """
    plan_mtime = max(p.stat().st_mtime for p in (target / "data" / "plan").rglob("*.json"))
    base = max(plan_mtime + 1.0, 0.0)
    written = 0
    layers: list[list[Path]] = [[], [], [], []]
    suffixes = [""] + [f"-x{c}" for c in range(2, factor + 1)]
    for kind, layer in (("data/results", 0), ("data/merged", 1)):
        src_root = done / kind
        for subject_dir in sorted(p for p in src_root.iterdir() if p.is_dir()):
            for suffix in suffixes:
                dst = target / kind / f"{subject_dir.name}{suffix}"
                if not dst.exists():
                    shutil.copytree(subject_dir, dst)
                layers[layer].extend(q for q in dst.rglob("*") if q.is_file())
    for subject_dir in sorted(p for p in (done / "Documents").iterdir() if (p / "document_reports").is_dir()):
        for suffix in suffixes:
            dst = target / "Documents" / f"{subject_dir.name}{suffix}" / "document_reports"
            if not dst.exists():
                shutil.copytree(subject_dir / "document_reports", dst)
            layers[1].extend(q for q in dst.rglob("*") if q.is_file())
    for name in ("combined-report.csv", "run-summary.json"):
        shutil.copy(done / "Documents" / name, target / "Documents" / name)
        layers[2].append(target / "Documents" / name)
    for name in ("report.html", "triage.xlsx", "languagetool/disable-rules.txt"):
        (target / "Documents" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(done / "Documents" / name, target / "Documents" / name)
        layers[3].append(target / "Documents" / name)
    for subject_dir in sorted(p for p in (done / "Documents" / "languagetool").iterdir() if p.is_dir()):
        for suffix in suffixes:
            dst = target / "Documents" / "languagetool" / f"{subject_dir.name}{suffix}"
            if not dst.exists():
                shutil.copytree(subject_dir, dst)
            layers[3].extend(q for q in dst.rglob("*") if q.is_file())
    for depth, files in enumerate(layers):
        stamp = base + depth
        for path in files:
            os.utime(path, (stamp, stamp))
            written += 1
    return written
