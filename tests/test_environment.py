"""environment.yml pins what requirements.txt and constraints.txt pin, and stands on its own."""

from __future__ import annotations

import re

import yaml
from conftest import REPO
from packaging.utils import canonicalize_name


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==(\S+)\s*", line.split("#")[0])
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def test_environment_yml_pins_the_requirements_at_the_constrained_versions():
    environment = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert not [line for line in pip if line.startswith("-")], "no -r, -c or -e: the file is copied alone"
    listed = pins(pip)
    assert len(listed) == len(pip), "every entry is an exact pin"
    required = pins((REPO / "requirements.txt").read_text(encoding="utf-8").splitlines())
    constrained = pins((REPO / "constraints.txt").read_text(encoding="utf-8").splitlines())
    assert required and required.items() <= listed.items()
    assert {name: constrained.get(name) for name in listed} == listed
