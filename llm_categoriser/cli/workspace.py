"""The folder the command-line interface works on: its settings and its layout."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import CategoriserError
from ..layout import CONFIG_FILE, SNAKEFILE, Layout
from ..settings import Settings, resolve

_CONFIG_KEY = re.compile(r"[a-zA-Z_][\w-]*\w$")


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def parse_config_value(value: str) -> Any:
    """A ``--config`` value as Snakemake reads it (int, float, True/False, YAML, else text)."""
    if value == "":
        return None
    for parser in (int, float):
        try:
            return parser(value)
        except ValueError:
            pass
    if value in ("True", "False"):
        return value == "True"
    try:
        parsed = yaml.load(value, Loader=yaml.BaseLoader)
    except yaml.YAMLError:
        return value
    return value if parsed is None else parsed


def split_config(entries: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not _CONFIG_KEY.match(key.strip()):
            raise CliError(f"--config {entry!r}: expected KEY=VALUE, e.g. --config batch_size=5")
        pairs.append((key.strip(), value))
    return pairs


@dataclass
class Workspace:
    directory: Path
    snakefile: Path
    cores: int
    settings: Settings
    config_entries: list[str]
    verbose: bool = False

    @property
    def layout(self) -> Layout:
        return self.settings.layout

    def path(self, relative: str | Path) -> Path:
        """A workflow path (relative to the working directory) as seen from here."""
        return self.directory / relative


def open_workspace(
    args: argparse.Namespace,
    extra: Sequence[tuple[str, str]] = (),
    need_report: bool = True,
    mode: str | None = "batch",
) -> Workspace:
    """The workspace of ``args``, in ``mode`` (None: the mode the configuration says)."""
    directory = Path(args.directory)
    if not directory.is_dir():
        raise CliError(f"directory {directory} does not exist")
    config_file = directory / CONFIG_FILE
    if not config_file.is_file():
        raise CliError(
            f"{config_file} not found: run this in a folder with the workflow's {CONFIG_FILE} "
            f"(or pass --directory), e.g. a copy of {SNAKEFILE.parent / CONFIG_FILE}"
        )
    snakefile = Path(args.snakefile)
    if not snakefile.is_file():
        raise CliError(f"Snakefile {snakefile} not found (--snakefile)")
    try:
        with open(config_file, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except yaml.YAMLError as exc:
        raise CliError(f"{config_file} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise CliError(f"{config_file} must hold KEY: VALUE settings")
    pairs = split_config(args.config or [])
    if args.provider:
        pairs.append(("provider", args.provider))
    pairs.extend(extra)
    if mode is not None:
        pairs.append(("mode", mode))
    for key, value in pairs:
        config[key] = parse_config_value(value)
    try:
        settings = resolve(config)
    except CategoriserError as exc:
        raise CliError(f"{config_file}: {exc}") from None
    if need_report and not (directory / settings.report).is_file():
        raise CliError(
            f"report {directory / settings.report} not found (config key report, or "
            f"<documents_dir>/language-check-report.csv with documents_dir {settings.documents_dir!r})"
        )
    return Workspace(
        directory=directory,
        snakefile=snakefile,
        cores=args.cores,
        settings=settings,
        config_entries=[f"{k}={v}" for k, v in pairs],
        verbose=getattr(args, "verbose", False),
    )
