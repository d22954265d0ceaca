"""Unit tests for the offline heuristic categoriser.

All but the last test use small invented inputs, most of them as tables of (flag, document,
expected category); the last one runs the evaluation on the reference corpus and is skipped
when ``../shared/corpus`` is absent.
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


# Each row: an id, the flag, extra document text (after ENGLISH_DOC), the expected category.
GRAMMAR = {"rule_id": "PLURAL_VERB", "type_": "grammar", "message": "The verb does not agree."}
CASES = [
    # conversion artefacts
    (
        "ligature",
        make_issue("ﬁnancial", "...consider the **ﬁnancial** impact of flooding...", suggestions="financial"),
        "The ﬁnancial impact of flooding.\n",
        Category.PARSING_ERROR,
    ),
    ("mojibake", make_issue("Ã©tude", "...an **Ã©tude** of the river....", suggestions="étude"), "", None),
    (
        "broken hyphenation",
        make_issue("assess- ment", "...The **assess- ment** will take place....", suggestions="assessment"),
        "",
        Category.PARSING_ERROR,
    ),
    (
        "word split across table cells",
        make_issue(
            "scribe", "...|      | De | **scribe** the landscape | [4] |...", suggestions="scribe's, scribes"
        ),
        "\n| Describe the landscape | Describe the coast |\n" * 3,
        Category.PARSING_ERROR,
    ),
    # Welsh, other languages, maths: not English spelling errors
    (
        "Welsh name",
        make_issue(
            "Llywodraeth",
            "...with support from **Llywodraeth** Cymru, learners...",
            suggestions="Government, Cymric",
        ),
        "",
        Category.FALSE_POSITIVE,
    ),
    (
        "Welsh sentence",
        make_issue(
            "cwricwlwm",
            "...mae'r **cwricwlwm** newydd yn cefnogi dysgwyr yn yr ysgol....",
            suggestions="curriculum",
        ),
        "",
        Category.FALSE_POSITIVE,
    ),
    (
        "Welsh in a table",
        make_issue(
            "Gweithgareddau",
            "...| **Gweithgareddau** | Activities for the day |...",
            suggestions="Government",
        ),
        "",
        Category.FALSE_POSITIVE,
    ),
    (
        "Welsh word in a table is not a fragment",
        make_issue("ysgol", "...| Cymraeg | English | | **ysgol** | school |...", suggestions="ysgols"),
        "\n| ysgol | school |\n| ysgolion | schools |\n",
        Category.FALSE_POSITIVE,
    ),
    (
        "French passage",
        make_issue(
            "piscine",
            "...Le weekend, je vais à la **piscine** avec mes amis et nous mangeons au café....",
            suggestions="piscina, piscines",
            subject="French",
        ),
        "Je vais à la plage avec mes amis. Nous sommes dans le parc et il est très beau.\n" * 5,
        Category.FALSE_POSITIVE,
    ),
    (
        "maths notation",
        make_issue(
            "frac",
            "...The gradient is $m = \\**frac**{y_2 - y_1}{x_2 - x_1}$ for any two points....",
            suggestions="Frac, franc, Fran (+491 more)",
        ),
        "",
        Category.FALSE_POSITIVE,
    ),
    (
        "repeated proper noun",
        make_issue(
            "Rhydaman", "...The river near **Rhydaman** floods most winters....", suggestions="Rhodamine"
        ),
        "Rhydaman is a town. The river near Rhydaman floods. Visit Rhydaman.\n",
        Category.FALSE_POSITIVE,
    ),
    # spelling: typing slips whose suggestion is a common word
    (
        "teh",
        make_issue("teh", "...The cat sat on **teh** mat....", suggestions="the"),
        "",
        Category.SPELLING_ERROR,
    ),
    (
        "recieve",
        make_issue(
            "recieve", "...Each learner will **recieve** a copy of the booklet....", suggestions="receive"
        ),
        "",
        Category.SPELLING_ERROR,
    ),
    (
        "long word, two slips",
        make_issue(
            "enviromnent", "...protect the local **enviromnent** from flooding....", suggestions="environment"
        ),
        "",
        Category.SPELLING_ERROR,
    ),
    (
        "two swapped letters of the only correction, in a name used throughout",
        make_issue("Audery", "...To show how **Audery** likes to get a sly dig in....", suggestions="Audrey"),
        "Audery walks slowly. Audery holds Angela's hand.\n",
        Category.SPELLING_ERROR,
    ),
    (
        "American spelling",
        make_issue(
            "color", "...Use a different **color** for each type of land use....", suggestions="colour"
        ),
        "",
        Category.SPELLING_ERROR,
    ),
    # other LanguageTool families
    (
        "repeated function word",
        make_issue(
            "the the",
            "...Learners should describe **the the** processes that shape the coast....",
            rule_id="ENGLISH_WORD_REPEAT_RULE",
            type_="duplication",
            message="Possible typo: you repeated a word.",
            suggestions="the",
        ),
        "",
        Category.ABSOLUTE_GRAMMATICAL_ERROR,
    ),
    (
        "redundant phrase",
        make_issue(
            "outside of",
            "...Fieldwork can take place **outside of** the school grounds....",
            rule_id="OUTSIDE_OF",
            type_="style",
            message="This phrase is redundant. Consider using “outside”.",
            suggestions="outside",
        ),
        "",
        Category.STYLISTIC_PREFERENCE,
    ),
    (
        "comma before a conjunction joining clauses",
        make_issue(
            "but",
            "...The rivers flood every winter** but** the town is rarely damaged....",
            rule_id="COMMA_COMPOUND_SENTENCE_2",
            type_="uncategorized",
            message="Use a comma before ‘but’ if it connects two independent clauses.",
            suggestions=", but",
        ),
        "",
        Category.POSSIBLE_AMBIGUOUS_GRAMMATICAL_ERROR,
    ),
    (
        "grammar rule in running prose",
        make_issue(
            "rivers erodes",
            "...The **rivers erodes** the valley floor....",
            suggestions="rivers erode",
            **GRAMMAR,
        ),
        "",
        Category.ABSOLUTE_GRAMMATICAL_ERROR,
    ),
    (
        "grammar rule in a transcript",
        make_issue(
            "we was",
            "...um (.) so **we was** going (.) er down the river (.) um...",
            suggestions="we were",
            **GRAMMAR,
        ),
        "A: um (.) so we was going (.) er down the river (.) um yeah (.) er\n",
        Category.FALSE_POSITIVE,
    ),
    (
        "brand written in lower case",
        make_issue(
            "youtube",
            "...Learners watch the **youtube** video about coastal erosion....",
            rule_id="YOUTUBE",
            type_="uncategorized",
            message="Did you mean “YouTube”?",
            suggestions="YouTube",
        ),
        "",
        Category.SPELLING_ERROR,
    ),
    (
        "missing apostrophe in a name",
        make_issue(
            "McDonalds",
            "...Another example is **McDonalds** letting customers redeem points....",
            rule_id="MCDONALDS",
            type_="uncategorized",
            message="Did you mean “McDonald's”?",
            suggestions="McDonald's",
        ),
        "",
        Category.SPELLING_ERROR,
    ),
    (
        "brand in a web address",
        make_issue(
            "youtube",
            "...see https://www.**youtube**.com/watch?v=abc for the clip....",
            rule_id="YOUTUBE",
            type_="uncategorized",
            message="Did you mean “YouTube”?",
            suggestions="YouTube",
        ),
        "",
        Category.FALSE_POSITIVE,
    ),
    (
        "misused phrase",
        make_issue(
            "with regards to",
            "...make decisions **with regards to** sources of finance....",
            rule_id="IN_OR_WITH_REGARDS_TO_OF",
            type_="misspelling",
            message="Did you mean “with regard to”?",
            suggestions="with regard to",
        ),
        "",
        Category.ABSOLUTE_GRAMMATICAL_ERROR,
    ),
    (
        "possessive without its apostrophe",
        make_issue(
            "businesses",
            "...Environmental issues caused by **businesses** activity are studied....",
            rule_id="POSSESSIVE_APOSTROPHE",
            type_="typographical",
            message="Possible missing apostrophe.",
            suggestions="businesses', business's",
        ),
        "",
        Category.ABSOLUTE_GRAMMATICAL_ERROR,
    ),
    (
        "decade written with an apostrophe",
        make_issue(
            "1970's",
            "...characters of different ethnicities in the **1970's**. A painting of...",
            rule_id="APOSTROPHE_IN_DATES",
            type_="typographical",
            message="Apostrophes aren’t needed for decades.",
            suggestions="1970s",
        ),
        "",
        Category.STYLISTIC_PREFERENCE,
    ),
    (
        "American word in British prose",
        make_issue(
            "vacation",
            "...the idea of taking a **vacation** without leaving the country....",
            rule_id="EN_GB_SIMPLE_REPLACE_VACATION",
            type_="locale-violation",
            message="“vacation” is American English.",
            suggestions="holiday",
        ),
        "",
        Category.SPELLING_ERROR,
    ),
    (
        "closed compound written as two words",
        make_issue(
            "sea bird",
            "...Undisturbed, not even by a **sea bird**, I stand under the sun....",
            rule_id="SEA_COMPOUNDS",
            type_="grammar",
            message="This word is normally spelled as one.",
            suggestions="seabird",
        ),
        "",
        Category.SPELLING_ERROR,
    ),
]
CASES = [
    (name, issue, extra, Category.PARSING_ERROR if expected is None else expected)
    for name, issue, extra, expected in CASES
]


@pytest.mark.parametrize(("issue", "extra", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_category(issue, extra, expected):
    category, _confidence, _reason = run(issue, ENGLISH_DOC + extra)
    assert category is expected


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
def test_evaluation_on_reference_corpus(shared_corpus, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import evaluate_offline

    out = tmp_path / "numbers.json"
    assert evaluate_offline.main(["--corpus", str(shared_corpus), "--json", str(out)]) == 0
    numbers = json.loads(out.read_text(encoding="utf-8"))
    held_out = numbers["held_out"]
    assert held_out["flags"] > 2000
    assert held_out["confident_dismissals_right"] >= 0.95
    assert held_out["confident_dismissals_coverage"] >= 0.30
    assert held_out["recall_real"] >= 0.55 and held_out["precision_real"] >= 0.40
    assert numbers["all"]["agreement"] > numbers["all"]["baseline_false_positive"] + 0.1
    bands = [b for b in numbers["confidence_all"].values() if b["count"] >= 50]
    assert bands[0]["agreement"] < bands[-1]["agreement"]
