"""The command line: verbs, their options and the help text."""

from __future__ import annotations

import argparse

from ..layout import SNAKEFILE
from ..providers import PROVIDERS
from . import verbs
from .estimate import cmd_estimate
from .job_records import STATUSES

EXIT_CODES = """exit status:
  0   done: nothing pending, nothing failed
  2   failed: bad input or settings, a job failed, or a provider refused (see the message)
  75  pending: batch jobs are still running remotely; rerun the same command later
  130 interrupted"""

# (verb, handler, help, description), in the order of the help text.
VERBS = (
    (
        "run",
        verbs.cmd_run,
        "categorise now, one request per batch (synchronous mode)",
        "Run the whole workflow in synchronous mode on the selection (snakemake all).",
    ),
    (
        "batch-create",
        verbs.cmd_batch_create,
        "plan the run and submit its batch jobs",
        "Plan the run and submit one batch job per group of batches (snakemake --until submit).",
    ),
    (
        "batch-list",
        verbs.cmd_batch_list,
        "list every remote batch job and its status",
        "List every remote batch job of the ledger (superseded ones included) and the jobs of the "
        "data folder, with their status.",
    ),
    (
        "batch-fetch",
        verbs.cmd_batch_fetch,
        "fetch finished jobs and write their documents",
        "Fetch finished batch jobs and write the documents they carry (snakemake --keep-going), "
        "with the provider and settings the open jobs were created with unless --provider or "
        "--config is given.",
    ),
    (
        "batch-cancel",
        verbs.cmd_batch_cancel,
        "cancel remote batch jobs",
        "Cancel remote jobs of the ledger, each with its own provider and settings.",
    ),
    (
        "train",
        verbs.cmd_train,
        "train the cascade's classifier on the model's cached answers",
        "Train the cascade's local classifier on the answers a model gave (data/cache), calibrate it by "
        "cross-validation over documents, print the share of flags it expects to answer and its "
        "agreement with the model, and save it to data/cascade/model.npz.",
    ),
    (
        "estimate",
        cmd_estimate,
        "what a run would send and cost, before sending anything",
        "Plan the run as the workflow would (same settings and filters, in the configured mode) and "
        "print the requests to send, those the cache answers, the estimated tokens and the "
        "estimated cost. Exit status 2 when the estimate is above max_cost_usd (a run would be refused).",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("workflow options")
    group.add_argument(
        "--directory",
        default=".",
        metavar="DIR",
        help="working directory with config.yaml and the documents (default: .)",
    )
    group.add_argument(
        "--snakefile",
        default=str(SNAKEFILE),
        metavar="FILE",
        help="the workflow (default: %(default)s)",
    )
    group.add_argument("--cores", type=int, default=2, metavar="N", help="Snakemake cores (default: 2)")
    group.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="settings passed to Snakemake's --config (the batch verbs add mode=batch, run adds mode=sync)",
    )
    group.add_argument("--provider", choices=list(PROVIDERS), help="the model provider")
    group.add_argument("--subjects", nargs="+", metavar="SUBJECT", help="only these subjects")
    group.add_argument("--documents", nargs="+", metavar="DOCUMENT", help="only these documents")
    group.add_argument("--batch-size", type=int, metavar="N", help="flags per batch (1-100)")
    # The earlier tool's state files: refused with what replaced them (verbs.refuse_state_files).
    group.add_argument("--tracking-file", metavar="FILE", help=argparse.SUPPRESS)
    group.add_argument("--state-file", metavar="FILE", help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="llm_categoriser",
        description="Categorise LanguageTool flags with an LLM, over the Snakemake workflow.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="VERB")
    parsers = []
    for name, handler, short, long in VERBS:
        parsers.append(
            commands.add_parser(
                name,
                parents=[common],
                help=short,
                description=long,
                epilog=EXIT_CODES,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
        parsers[-1].set_defaults(handler=handler)
    run, create, listing, fetch, cancel, _train, estimate = parsers
    for verb in (run, create, fetch):
        verb.add_argument("--verbose", action="store_true", help="show Snakemake's output")
    create.add_argument(
        "--force",
        action="store_true",
        help="submit new jobs even where jobs were submitted; the earlier ones are cancelled (superseded)",
    )

    listing.add_argument("--status", choices=STATUSES, help="only jobs with this status")
    for verb in (listing, estimate):
        verb.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument(
        "--refresh", action="store_true", help="ask each job's provider for its remote state and progress"
    )
    listing.add_argument("--verbose", action="store_true", help="also list the issue ids of each document")

    which = fetch.add_mutually_exclusive_group()
    which.add_argument(
        "--check-all-pending",
        action="store_true",
        help="check every job and complete the whole run (the default)",
    )
    which.add_argument(
        "--job-names", nargs="+", metavar="NAME", help="only these jobs (job ids or remote batches/... names)"
    )

    target = cancel.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--job-names", nargs="+", metavar="NAME", help="these jobs (job ids or remote batches/... names)"
    )
    target.add_argument("--all", action="store_true", help="every ledger job that has not ended")
    return parser
