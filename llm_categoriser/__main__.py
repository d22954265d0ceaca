"""``python -m llm_categoriser``: the command-line interface."""

from .cli import main

raise SystemExit(main())
