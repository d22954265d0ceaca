"""Synchronous categorisation: one job per document part (`sync_batches_per_job` batches).

The only input is the document's manifest, which lists every batch's fingerprint (flags, page
text, provider, model, settings, prompt digest), so any change to a batch rewrites it. Every
part of that document then reruns, and each batch whose fingerprint is unchanged is answered
from data/cache without a request: an edit re-sends exactly the batches it changed. Parts
rather than one job per batch keep Snakemake's per-job cost small on big corpora
(docs/BENCHMARKS.md).
"""


rule categorise:
    input:
        f"{DATA}/plan/{{subject}}/{{document}}/manifest.json",
    output:
        f"{DATA}/results/{{subject}}/{{document}}/part-{{part}}.json",
    log:
        f"{DATA}/logs/categorise/{{subject}}/{{document}}/part-{{part}}.log",
    resources:
        api=API_SLOTS,
    run:
        from llm_categoriser.jobs import run_categorise

        run_categorise(input[0], int(wildcards.part), output[0], log[0], SETTINGS)
