"""What people look at after a run: the HTML report, the workbook, LanguageTool feedback."""


localrules:
    results_view,


# the subjects of the combined report (a filtered run keeps the others' documents in it)
SUBJECTS = sorted({subject for subject, _ in TARGETS.combined_documents()})
RESULTS_VIEW = [
    LAYOUT.report_html,
    LAYOUT.workbook,
    LAYOUT.feedback_rules,
    *(LAYOUT.feedback_words(s) for s in SUBJECTS),
    *(LAYOUT.feedback_subject_rules(s) for s in SUBJECTS),
]


rule results_view:
    input:
        csv=LAYOUT.combined_csv,
        summary=LAYOUT.summary,
    output:
        html=report(
            LAYOUT.report_html,
            caption="captions/report_html.rst",
            category="Results",
        ),
        xlsx=LAYOUT.workbook,
        rules=LAYOUT.feedback_rules,
        words=[LAYOUT.feedback_words(s) for s in SUBJECTS],
        subject_rules=[LAYOUT.feedback_subject_rules(s) for s in SUBJECTS],
    log:
        LAYOUT.pattern("log_results_view"),
    run:
        from llm_categoriser.results_view.build import run_results_view

        run_results_view(LAYOUT, SUBJECTS, log[0])
