"""The cascade: a local classifier, trained on a model's earlier answers, answers the flags it
is confident about, and only the rest go to the model (docs/DESIGN.md §30).

``features`` (what the classifier sees of a flag), ``evidence`` (page, document hints and the
offline verdict of each flag), ``fragments`` (a flagged word that is a piece of a longer
word of its document), ``memory`` (how often the model answered a flag's rule and word
before, hashed), ``training`` (fit and calibrate), ``model`` (the saved model and prediction),
``learn`` (the ``train`` verb: learn from the answers in ``data/cache``), ``decide`` (the
planner's decisions), ``savings`` (what the estimate says the cascade saves).
"""
