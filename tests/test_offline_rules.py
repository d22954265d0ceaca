"""Unit tests for the offline heuristic categoriser.

All but the last test use small invented inputs; the last one runs the benchmark on the reference
corpus and is skipped when ``../shared/corpus`` is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llm_categoriser.categories import Category
from llm_categoriser.models import Issue
from llm_categoriser.providers.offline.rules import classify, document_hints

SPELLING_RULE = "MORFOLOGIK_RULE_EN_GB"


def make_issue(
    issue: str,
    context: str,
    *,
    rule_id: str = SPELLING_RULE,
    type_: str = "misspelling",
    message: str = "Possible spelling mistake found.",
    suggestions: str = "",
    subject: str = "Geography",
    filename: str = "unit-1.md",
    page: int | None = 3,
) -> Issue:
    return Issue(
        subject=subject,
        filename=filename,
        page=page,
        rule_id=rule_id,
        type=type_,
        issue=issue,
        message=message,
        suggestions=suggestions,
        context=context,
        pass_code="LT",
        row=1,
        occurrence=0,
        key="",
    )


def run(issue: Issue, document: str, page: str | None = None) -> tuple[Category, int, str]:
    hints = document_hints(issue, document)
    return classify(issue, page if page is not None else document, hints)


ENGLISH_DOC = (
    "{1}------------------------------------------------\n\n"
    "# Unit 1: Rivers and coasts\n\n"
    "Learners should be able to describe how rivers shape the landscape. "
    "They will receive feedback on their fieldwork and they should explain the processes "
    "that erode the coast. The teacher will receive the completed booklet at the end of the unit.\n"
)


def test_ligature_artefact_is_parsing_error():
    issue = make_issue(
        "ﬁnancial",
        "...Learners should consider the **ﬁnancial** impact of flooding on the town....",
        suggestions="financial",
    )
    category, confidence, _reason = run(issue, ENGLISH_DOC + "The ﬁnancial impact of flooding.\n")
    assert category is Category.PARSING_ERROR
    assert confidence >= 80


def test_mojibake_is_parsing_error():
    issue = make_issue(
        "Ã©tude",
        "...an **Ã©tude** of the local river basin....",
        suggestions="étude",
    )
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is Category.PARSING_ERROR


@pytest.mark.parametrize(
    ("word", "context"),
    [
        ("Llywodraeth", "...with support from **Llywodraeth** Cymru, learners visited the river...."),
        ("cwricwlwm", "...mae'r **cwricwlwm** newydd yn cefnogi dysgwyr yn yr ysgol...."),
        ("Gweithgareddau", "...| **Gweithgareddau** | Activities for the fieldwork day |..."),
    ],
)
def test_welsh_word_flagged_by_morfologik_is_not_a_spelling_error(word, context):
    issue = make_issue(word, context, suggestions="Government, Cymric")
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is not Category.SPELLING_ERROR
    assert category is Category.FALSE_POSITIVE


def test_welsh_word_in_a_table_is_not_taken_for_a_fragment():
    document = ENGLISH_DOC + "\n| ysgol | school |\n| ysgolion | schools |\n"
    issue = make_issue("ysgol", "...| Cymraeg | English | | **ysgol** | school |...", suggestions="ysgols")
    category, _confidence, _reason = run(issue, document)
    assert category is Category.FALSE_POSITIVE


def test_clear_misspelling_with_single_close_suggestion_is_spelling_error():
    issue = make_issue(
        "recieve",
        "...Each learner will **recieve** a copy of the fieldwork booklet before the visit....",
        suggestions="receive",
    )
    category, confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is Category.SPELLING_ERROR
    assert confidence >= 50


def test_american_spelling_is_spelling_error():
    issue = make_issue(
        "color",
        "...Use a different **color** for each type of land use on the map....",
        suggestions="colour",
    )
    category, _confidence, reason = run(issue, ENGLISH_DOC)
    assert category is Category.SPELLING_ERROR
    assert "colour" in reason


def test_broken_hyphenation_is_parsing_error():
    issue = make_issue(
        "assess- ment",
        "...The **assess- ment** will take place in the summer term....",
        suggestions="assessment",
    )
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is Category.PARSING_ERROR


def test_word_split_across_table_cells_is_parsing_error():
    document = ENGLISH_DOC + "\n| Describe the landscape | Describe the coast |\n" * 3
    issue = make_issue(
        "scribe",
        "...|      | De | **scribe** the landscape | [4] |...",
        suggestions="scribe's, scribes",
    )
    category, _confidence, _reason = run(issue, document)
    assert category is Category.PARSING_ERROR


def test_repeated_proper_noun_is_false_positive():
    document = ENGLISH_DOC + "Rhydaman is a town. The river near Rhydaman floods. Visit Rhydaman.\n"
    issue = make_issue(
        "Rhydaman",
        "...The river near **Rhydaman** floods most winters....",
        suggestions="Rhodamine",
    )
    category, _confidence, _reason = run(issue, document)
    assert category is Category.FALSE_POSITIVE


def test_maths_notation_is_false_positive():
    issue = make_issue(
        "frac",
        "...The gradient is $m = \\**frac**{y_2 - y_1}{x_2 - x_1}$ for any two points....",
        suggestions="Frac, franc, Fran (+491 more)",
    )
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is Category.FALSE_POSITIVE


def test_foreign_language_passage_is_false_positive():
    issue = make_issue(
        "piscine",
        "...Le weekend, je vais à la **piscine** avec mes amis et nous mangeons au café....",
        suggestions="piscina, piscines",
        subject="French",
    )
    french_doc = (
        ENGLISH_DOC + "Je vais à la plage avec mes amis. Nous sommes dans le parc et il est très beau.\n" * 5
    )
    category, _confidence, _reason = run(issue, french_doc)
    assert category is Category.FALSE_POSITIVE


def test_repeated_function_word_in_prose_is_grammatical_error():
    issue = make_issue(
        "the the",
        "...Learners should describe the the processes that shape the coast....",
        rule_id="ENGLISH_WORD_REPEAT_RULE",
        type_="duplication",
        message="Possible typo: you repeated a word.",
        suggestions="the",
    )
    issue = issue.model_copy(
        update={"context": "...Learners should describe **the the** processes that shape the coast...."}
    )
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is Category.ABSOLUTE_GRAMMATICAL_ERROR


def test_redundant_phrase_is_stylistic_preference():
    issue = make_issue(
        "outside of",
        "...Fieldwork can take place **outside of** the school grounds....",
        rule_id="OUTSIDE_OF",
        type_="style",
        message="This phrase is redundant. Consider using “outside”.",
        suggestions="outside",
    )
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is Category.STYLISTIC_PREFERENCE


SAMPLES = [
    make_issue("ﬁnancial", "...the **ﬁnancial** impact...", suggestions="financial"),
    make_issue("recieve", "...will **recieve** a copy...", suggestions="receive"),
    make_issue("Llywodraeth", "...from **Llywodraeth** Cymru...", suggestions="Government"),
    make_issue(
        "and",
        "...rivers erode the land** and** they deposit sediment...",
        rule_id="COMMA_COMPOUND_SENTENCE",
        type_="uncategorized",
        suggestions=", and",
    ),
    make_issue(
        "'",
        "...the teacher said **'**well done to all....",
        rule_id="EN_UNPAIRED_QUOTES",
        type_="typographical",
        message="Unpaired symbol: ‘'’ seems to be missing",
    ),
    make_issue("", "", rule_id="", type_=""),
    make_issue(
        "weird   words", "no highlight at all", rule_id="SOMETHING_NEW", type_="unknown-type", page=None
    ),
]


@pytest.mark.parametrize("issue", SAMPLES)
def test_output_contract(issue):
    hints = document_hints(issue, ENGLISH_DOC)
    assert isinstance(hints, dict)
    assert len(hints) <= 8
    assert json.loads(json.dumps(hints)) == hints
    for page in (ENGLISH_DOC, None, ""):
        category, confidence, reason = classify(issue, page, hints)
        assert isinstance(category, Category)
        assert isinstance(confidence, int)
        assert 0 <= confidence <= 100
        assert reason and reason.strip() == reason
        assert reason[0].isupper() and reason.endswith(".")
        # one sentence: no sentence-ending punctuation before the final full stop
        assert not re.search(r"[.!?]\s+[A-Z]", reason[:-1])


@pytest.mark.parametrize("issue", SAMPLES)
def test_deterministic(issue):
    first = classify(issue, ENGLISH_DOC, document_hints(issue, ENGLISH_DOC))
    for _ in range(3):
        assert classify(issue, ENGLISH_DOC, document_hints(issue, ENGLISH_DOC)) == first
    # a fresh copy of the document text (a different object) gives the same hints
    assert document_hints(issue, "".join(list(ENGLISH_DOC))) == document_hints(issue, ENGLISH_DOC)


def test_hints_do_not_leak_between_documents():
    issue = make_issue("Rhydaman", "...near **Rhydaman** floods...", suggestions="Rhodamine")
    with_name = ENGLISH_DOC + "Rhydaman Rhydaman Rhydaman\n"
    assert document_hints(issue, with_name)["freq"] == 3
    assert document_hints(issue, ENGLISH_DOC)["freq"] == 0


def test_missing_hints_are_tolerated():
    issue = make_issue("recieve", "...will **recieve** a copy...", suggestions="receive")
    category, confidence, reason = classify(issue, None, {})
    assert isinstance(category, Category) and 0 <= confidence <= 100 and reason


def test_hints_are_cached_per_document():
    rows = "".join(
        f"| Row {n} | The river Afon{n % 7} floods the valley each winter. |\n" for n in range(20000)
    )
    document = ENGLISH_DOC + rows  # about 1 MB
    issues = [
        make_issue(f"Afon{n % 7}", f"...The river **Afon{n % 7}** floods...", suggestions="Avon")
        for n in range(2000)
    ]
    hints = [document_hints(issue, document) for issue in issues]
    assert hints[0]["freq"] > 1000
    assert hints[0] == hints[7]  # the same word gets the same counts from the one index


@pytest.mark.corpus
@pytest.mark.slow
def test_agreement_on_reference_corpus(shared_corpus, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import evaluate_offline

    out = tmp_path / "numbers.json"
    assert evaluate_offline.main(["--corpus", str(shared_corpus), "--json", str(out)]) == 0
    numbers = json.loads(out.read_text(encoding="utf-8"))
    assert numbers["overall"] >= 0.60
    assert numbers["overall"] > numbers["baseline_false_positive"] + 0.1
    buckets = [b for b in numbers["per_bucket"].values() if b["count"] >= 50]
    assert buckets[0]["agreement"] < buckets[-1]["agreement"]
