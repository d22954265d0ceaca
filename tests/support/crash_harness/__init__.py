"""Crash-safety harness: SIGKILL the whole Snakemake run at random moments, rerun, compare.

For each corpus (the bundled sample, and a temporary copy of the reference corpus when present)
and each mode (``offline``; ``sync`` and ``batch`` with the gemini provider against the loopback
emulator), the harness

1. runs the pipeline once without interruption (the *baseline*): its final CSVs, the number of
   remote batch jobs it created, its duration ``D`` (all its runs; batch mode needs several) and
   its start-up cost (until Snakemake has built the DAG);
2. runs *trials*: a fresh workspace and a fresh emulator; Snakemake starts in its own session
   (``start_new_session=True``) and its whole process group is killed with ``SIGKILL`` at seeded
   random moments; after every kill the harness checks that no partially written file is visible
   under ``Documents/`` or ``data/``, then it reruns until the pipeline succeeds. A trial can kill
   several runs in a row (``--kills-per-trial``): kill ``j`` comes at ``f_j * R_j`` seconds on
   the trial's timeline after kill ``j-1``, where ``R_j`` estimates the time still needed
   (``D`` minus the progress the earlier runs made) and the fractions ``f_j`` of a mode are
   stratified over ``[0, 1)`` from the seed, so the kill points cover the whole run. In gemini
   modes, ``--event-kills`` more trials are killed by the emulator itself right after it served a
   seeded n-th call (a generateContent answer, a batch creation, a status poll) and before the
   answer goes out: the remote side did the work, the pipeline never learns it;
3. compares each trial's final CSVs (every ``Documents/*/document_reports/*.csv`` and
   ``Documents/combined-report.csv``, plus ``run-summary.json``) with the baseline's, checks that
   no flag is lost and that the emulator created exactly as many batch jobs as the baseline run
   (no job fails here, so the dead-job resubmission may add none).

Anything else is a *difference*: a rerun blocked by a stale ``.snakemake/locks`` (recorded, then
``snakemake --unlock`` is run explicitly and visibly so that the other checks still run;
``--on-stale-lock stop`` ends the trial instead), a failed rerun, a run that does not converge, a
corrupt or partial file. Hidden temporary files (``.<name>.<random>.tmp`` from
``atomic_write_bytes``) are not outputs: they are counted (``tmp_leftovers``), never parsed.

The emulator stays in this process, outside the killed process group; its batch jobs complete on
their own (``batch_mode="per_poll"``, or at the first poll with ``--batch-completion first_poll``),
so reruns converge; it answers generateContent after ``--latency`` seconds (default 0.1), so kills
also land while requests are in flight. Batch-mode runs use ``--keep-going``.

Replay a failure with the printed seed, or with the printed kill moments::

    python tests/support/crash_harness --corpus sample --modes batch --seed 1234 --only-trial 7
    python tests/support/crash_harness --corpus sample --modes sync --kill-at 6.25 --kill-at 11.5
    python tests/support/crash_harness --corpus sample --modes batch \
        --kill-event models.batchGenerateContent#2

(``--kill-at`` runs one trial killed at exactly these moments of its timeline, in seconds;
``--kill-event`` one trial per event.) Pass the same ``--subjects``/``--batch-completion``/
``--latency`` as the run being replayed. On a loaded machine a replay hits the same phase of the
run, not necessarily the same instruction.
"""

from __future__ import annotations

from support.crash_harness.driver import format_summary, run
from support.crash_harness.records import MODES, SAMPLE_DOCUMENTS, SHARED_DOCUMENTS, Options

__all__ = ["MODES", "SAMPLE_DOCUMENTS", "SHARED_DOCUMENTS", "Options", "format_summary", "run"]
