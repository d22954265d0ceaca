"""The cascade: a local classifier, trained on a model's earlier answers, answers the flags it
is confident about, and only the rest go to the model (docs/DESIGN.md §30).

``features`` (what the classifier sees of a flag), ``evidence`` (page, document hints and the
offline verdict of each flag), ``training`` (fit and calibrate), ``model`` (the saved model and
prediction), ``learn`` (the ``train`` verb: learn from the answers in ``data/cache``).
"""
