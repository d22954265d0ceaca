"""Command-line interface over the workflow (``python -m llm_categoriser``).

``arguments.py`` parses the command line, ``verbs.py`` holds the batch verbs, ``estimate.py``
the estimate of a run, ``snakemake_run.py`` runs the workflow as a subprocess,
``job_records.py`` reads what the rules recorded, and ``present.py`` shows it.
"""

from __future__ import annotations

import os
import sys

from ..errors import CategoriserError
from .arguments import build_parser
from .verbs import EXIT_FAILED, EXIT_OK, refuse_state_files
from .workspace import CliError

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
