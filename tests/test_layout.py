"""One place for paths and one for provider names: the layout and the provider registry."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from llm_categoriser.layout import PACKAGE_DIR, TEMPLATES, WILDCARDS, Layout
from llm_categoriser.providers import PROVIDERS

LAYOUT = Layout("Docs", "state")
VALUES = {"subject": "Geo", "document": "a", "job": "Geo-01"}


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("manifest", LAYOUT.manifest("Geo", "a")),
        ("job_result", LAYOUT.job_result("Geo-01")),
        ("handle", LAYOUT.handle("Geo-01")),
        ("job_results", LAYOUT.job_results("Geo-01")),
        ("job_spec", LAYOUT.job_spec("Geo-01")),
        ("document_csv", LAYOUT.document_csv("Geo", "a")),
        ("document_stats", LAYOUT.document_stats("Geo", "a")),
        ("log_categorise", LAYOUT.log("categorise", job="Geo-01")),
        ("merge_record", LAYOUT.merge_record("Geo-01")),
        ("log_merge", LAYOUT.log("merge", job="Geo-01")),
        ("log_fetch", LAYOUT.log("fetch", job="Geo-01")),
    ],
)
def test_rule_patterns_match_the_paths_the_package_uses(pattern, path):
    """A rule's wildcard pattern, filled in, is the path the package reads or writes."""
    template = LAYOUT.pattern(pattern)
    regex = re.escape(template)
    for name, allowed in WILDCARDS.items():
        regex = regex.replace(re.escape("{" + name + "}"), f"(?P<{name}>{allowed})")
    match = re.fullmatch(regex, path)
    assert match, (template, path)
    assert all(value == VALUES[key] for key, value in match.groupdict().items())


def test_every_template_starts_in_a_configured_folder():
    assert all(t.startswith(("{docs}", "{data}")) for t in TEMPLATES.values())


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module, without its docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


OUTSIDE = sorted(
    p
    for p in PACKAGE_DIR.rglob("*.py")
    if "providers" not in p.relative_to(PACKAGE_DIR).parts and p.name != "layout.py"
)


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_no_path_literal_or_provider_name_outside_the_layout_and_the_providers(path):
    strings = _code_strings(path)
    assert not [s for s in strings if s in PROVIDERS], "branches on a provider's name"
    paths = [s for s in strings if re.search(r"(^|/)(plan|jobs|results|cache|merged|logs)/|\.json$", s)]
    assert not paths, f"path literal(s) {paths}: take them from layout.py"
