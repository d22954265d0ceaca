"""The design document the code cites: every cited section exists."""

from __future__ import annotations

import re

from conftest import REPO

CITED = re.compile(r"docs/DESIGN\.md §(\d+)")
FOLDERS = ("llm_categoriser", "rules", "scripts", "profiles", "tests", "benchmarks")


def test_every_cited_design_section_exists():
    design = (REPO / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", design, flags=re.MULTILINE)}
    assert sections == set(range(1, max(sections) + 1)), "sections are numbered 1..N"
    files = [REPO / "Snakefile"] + [
        p for folder in FOLDERS for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".smk", ".yaml")
    ]
    cited = {
        (str(p.relative_to(REPO)), int(n))
        for p in files
        for n in CITED.findall(p.read_text(encoding="utf-8"))
    }
    assert cited, "the code cites the design document"
    assert not [(path, n) for path, n in cited if n not in sections]
