"""Sync mode: one categorise job per document part (docs/DESIGN.md §12).

The only input is the document's manifest, which lists every batch's fingerprint, so any
change to a batch rewrites it; every part of that document then reruns, and each batch whose
fingerprint is unchanged is answered from the answer cache without a request.
"""


rule categorise:
    input:
        LAYOUT.pattern("manifest"),
    output:
        LAYOUT.pattern("part_result"),
    log:
        LAYOUT.pattern("log_categorise"),
    resources:
        api=API_SLOTS,
    run:
        from llm_categoriser.steps import run_categorise

        run_categorise(input[0], int(wildcards.part), output[0], log[0], SETTINGS)
