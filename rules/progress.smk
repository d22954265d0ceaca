"""The compact live view of a run (llm_categoriser/progress.py): started by `onstart`."""

import logging

PROGRESS_VIEW = []

if workflow.is_main_process and SETTINGS.progress == "compact":
    from llm_categoriser.progress import quieten

    quieten(logging.getLogger("snakemake.logging"), lambda: not workflow.dryrun)


def start_progress():
    """Show flags done, requests, cache, cost and time left while the jobs run."""
    from llm_categoriser.progress import ProgressView
    from llm_categoriser.spending import rates_per_million

    if not workflow.is_main_process:
        return
    files = list(
        dict.fromkeys(
            path
            for doc in PLAN.documents
            for path in TARGETS.document_results(doc.subject, doc.document)
        )
    )
    view = ProgressView(files, PLAN.flags, LAYOUT, prices=rates_per_million(SETTINGS))
    PROGRESS_VIEW.append(view.start())


def stop_progress():
    while PROGRESS_VIEW:
        PROGRESS_VIEW.pop().stop()
