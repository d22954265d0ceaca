"""Command-line interface over the workflow (``python -m llm_categoriser``).

``arguments.py`` parses the command line, ``verbs.py`` holds the batch verbs, ``estimate.py``
the estimate of a run, ``snakemake_run.py`` runs the workflow as a subprocess,
``job_records.py`` reads what the rules recorded, and ``present.py`` shows it.

A ``run`` whose stamp says nothing changed since the last complete run is answered before any
of those are imported (``run_stamp.py``, docs/DESIGN.md §32).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]


def __getattr__(name: str) -> Any:
    if name == "build_parser":
        from .arguments import build_parser

        return build_parser
    raise AttributeError(name)


def up_to_date(argv: list[str]) -> bool:
    """``run`` with nothing to do since its last complete run: print that run's summary."""
    import argparse

    from ..layout import SNAKEFILE
    from ..run_stamp import check

    if not argv or argv[0] != "run" or {"-h", "--help"} & set(argv):
        return False
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--directory", default=".")
    where.add_argument("--snakefile", default=str(SNAKEFILE))
    known, _ = where.parse_known_args(argv[1:])
    summary = check(Path(known.directory), argv, Path(known.snakefile))
    if summary is None:
        return False
    print("Nothing to do: no input, output, setting or code changed since the last complete run.")
    print(summary)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if up_to_date(argv):
        return 0
    from ..errors import CategoriserError
    from .arguments import build_parser
    from .verbs import EXIT_FAILED, EXIT_OK, refuse_state_files
    from .workspace import CliError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_FAILED
    if getattr(args, "batch_size", None) is not None and not 1 <= args.batch_size <= 100:
        parser.error("--batch-size must be a whole number from 1 to 100")
    try:
        refuse_state_files(args)
        return int(args.handler(args))
    except (CliError, CategoriserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
