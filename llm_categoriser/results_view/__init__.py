"""What people look at and act on after a run: the HTML report, the workbook, LanguageTool feedback.

Everything here reads the combined CSV and the run summary that the pipeline already wrote, so it
can be rebuilt at any time without asking the model again.
"""
