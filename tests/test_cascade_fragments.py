"""Word fragments: a flagged piece of a longer word of the document is a feature the classifier sees."""

from __future__ import annotations

from llm_categoriser.cascade.evidence import document_evidence
from llm_categoriser.cascade.features import ReportStats, flag_features
from llm_categoriser.cascade.fragments import DocumentWords
from llm_categoriser.models import Issue

TEXT = "{1}------\nCalculate how much money Sian will need. See the APPENDIX and the category list.\n"


def flag(word: str, context: str, row: int = 1) -> Issue:
    return Issue(
        subject="Mathematics",
        filename="paper.md",
        page=1,
        rule_id="MORFOLOGIK_RULE_EN_GB",
        type="misspelling",
        issue=word,
        message="Possible spelling mistake found.",
        suggestions="Curate",
        context=context,
        row=row,
        key=f"k{row}",
    )


def test_a_piece_of_a_longer_word_of_the_document_is_a_fragment() -> None:
    words = DocumentWords.from_text(TEXT)
    assert words.fragment("culate") == "end"  # the end of "Calculate", split by a conversion
    assert words.fragment("PENDIX") == "end"
    assert words.fragment("Calcu") == "start"
    assert words.fragment("ate") == "end" and words.fragment("cat") == "start"
    assert words.fragment("Cald") == ""  # no word of the document starts or ends so
    assert words.fragment("Calculate") == ""  # the whole word is no piece of itself
    assert words.fragment("x") == ""  # a single letter is too short to tell
    assert words.fragment("culat") == ""  # the middle of a word is not counted
    assert words.fragment("how much") == "" and words.fragment("cul8te") == ""
    assert DocumentWords.from_text("").fragment("culate") == ""


def test_the_features_say_a_flag_is_a_fragment_and_what_is_beside_it() -> None:
    piece = flag("culate", "...money aside per week. **culate** how much money...", 1)
    latex = flag("frac", "...Total bytes = $$\\**frac**{49,766,400}{8}...", 2)
    whole = flag("Sian", "...much money **Sian** will need...", 3)
    issues = [piece, latex, whole]
    evidence = {e.issue.key: e for e in document_evidence(issues, TEXT)}
    stats = ReportStats.from_issues(issues)
    assert evidence["k1"].fragment == "end" and evidence["k3"].fragment == ""
    features = flag_features(evidence["k1"], stats)
    assert features["fragment=end"] == 1.0
    assert features["fragment_shape=end|lower"] == 1.0
    assert features["before=space"] == 1.0 and features["after=space"] == 1.0
    latex_features = flag_features(evidence["k2"], stats)
    assert latex_features["before=\\"] == 1.0 and latex_features["after={"] == 1.0
    assert not any(name.startswith("fragment") for name in flag_features(evidence["k3"], stats))
    # without the document's text, no flag is a fragment
    assert all(e.fragment == "" for e in document_evidence(issues, None))
