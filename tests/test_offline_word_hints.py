"""Unit tests of the offline categoriser's word evidence: word frequencies per language, the word
hints of a flag, typing slips, unknown words in tables and how confident a dismissal is (tables
of flag, document and expectation; the category table is in ``test_offline_rules.py``)."""

from __future__ import annotations

import re

import pytest
from test_offline_rules import ENGLISH_DOC, make_issue, run

from llm_categoriser.categories import Category
from llm_categoriser.providers.offline.rules import classify, document_hints, word_hints, zipf

# ---- word frequencies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("common", "rarer"),
    [("the", "receive"), ("receive", "teh"), ("teh", "xqzvbw"), ("colour", "Rhydaman")],
)
def test_zipf_orders_words_by_how_common_they_are(common, rarer):
    assert zipf(common) > zipf(rarer) >= 0.0


@pytest.mark.parametrize(
    ("word", "lang", "known"),
    [
        ("bonjour", "fr", True),
        ("schmecken", "de", True),
        ("playa", "es", True),
        ("Bonjour", "fr", True),
        ("xqzvbw", "fr", False),
        ("two words", "en", False),
        ("", "en", False),
        ("ysgol", "cy", False),
    ],
)
def test_zipf_per_language(word, lang, known):
    assert (zipf(word, lang) > 0) is known


@pytest.mark.parametrize("lang", ["en", "fr", "de", "es"])
def test_zipf_is_wordfreqs_own_frequency_of_every_word(lang):
    # the lists are read without importing wordfreq; every word must get what wordfreq says
    import math

    import wordfreq

    frequencies = wordfreq.get_frequency_dict(lang, wordlist="small")
    assert len(frequencies) > 10_000
    wrong = [
        word
        for word, freq in frequencies.items()
        if " " not in word and zipf(word, lang) != round(math.log10(freq) + 9, 2) and word == word.lower()
    ]
    assert wrong == []


def test_word_hints_name_the_word_its_suggestion_and_the_document_language():
    issue = make_issue("piscine", "...la **piscine**...", suggestions="piscina", subject="French")
    english = word_hints(issue)
    assert set(english) == {"alien", "zipf", "sugg_zipf"}
    french = word_hints(issue, "fr")
    assert french["lang_zipf"] > english["zipf"]
    # several words: only their neighbours are looked up
    assert word_hints(make_issue("the the", "...to **the the** coast...", suggestions="the")) == {"alien": 0}
    assert word_hints(make_issue("", "")) == {}


# ---- neighbours that are no English words: the flag sits in a phrase of another language ---------


@pytest.mark.parametrize(
    ("word", "context", "alien"),
    [
        ("shel", "...the tefillah **shel** rosh is bound to the head...", 2),  # tefillah, rosh
        ("aseh", "...known as mitzvot **aseh** and negative ones...", 1),  # mitzvot
        ("teh", "...The cat sat on **teh** mat....", 0),
        ("teh", "...Rhydaman and Aberaeron **teh** Llandovery...", 0),  # capitalised names do not count
        ("teh", "...xq zv **teh** 42 of...", 0),  # neither two letters nor digits count
    ],
)
def test_alien_neighbours_hint(word, context, alien):
    assert word_hints(make_issue(word, context, suggestions="she"))["alien"] == alien


@pytest.mark.parametrize(
    ("issue", "not_expected"),
    [
        # one edit from a common word, but between words English does not know: not a typing slip
        (
            make_issue("shel", "...the tefillah **shel** rosh is bound...", suggestions="she, shell, shed"),
            Category.SPELLING_ERROR,
        ),
        (
            make_issue("karna", "...such as kirat **karna**, vand chakna...", suggestions="karma, kana"),
            Category.SPELLING_ERROR,
        ),
        # a phrase LanguageTool thinks misused, inside a sentence of another language
        (
            make_issue(
                "el caso",
                "...Sin embargo, en **el caso** de elegir una universidad privada...",
                rule_id="EN_MULTITOKEN_SPELLING_TWO",
                suggestions="El Paso",
            ),
            Category.ABSOLUTE_GRAMMATICAL_ERROR,
        ),
    ],
    ids=["slip among foreign words", "another slip among foreign words", "misused phrase in Spanish"],
)
def test_no_english_error_among_foreign_words(issue, not_expected):
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is not not_expected


@pytest.mark.parametrize(
    ("context", "suggestions", "expected"),
    [
        # the same slip among English words stays one, with LanguageTool's usual list of corrections
        ("...The cat sat on **teh** mat....", "the", Category.SPELLING_ERROR),
        ("...The cat sat on **teh** mat....", "the, tea, ten (+19 more)", Category.SPELLING_ERROR),
        # a bracket after a space opens an aside; the word in it is a word on its own
        ("...destroys this plan (**Jeremaih** 1:5)....", "Jeremiah", Category.SPELLING_ERROR),
    ],
)
def test_slip_among_english_words(context, suggestions, expected):
    word = re.search(r"\*\*(.+?)\*\*", context).group(1)
    category, _confidence, _reason = run(make_issue(word, context, suggestions=suggestions), ENGLISH_DOC)
    assert category is expected


# ---- typing slips: the evidence that rules one out ----------------------------------------------


@pytest.mark.parametrize(
    ("word", "suggestions", "context", "extra"),
    [
        ("teh", "the", "...The cat sat on **teh** mat....", "teh " * 6),  # used again and again
        ("MALF", "HALF, MALE", "...| 4   | **MALF**   | RACTICE |...", ""),  # a capitalised heading piece
        ("cate", "came, late", "...| Hot | **cate** | sold the |...", ""),  # a table cell
        ("ren", "men, run", "...close to their stepchild(**ren**). In many...", ""),  # glued to a word
        ("lov", "love", "...hope of thee, **lov**'d boy....", ""),  # an elision
        ("stringa", "string, strings", "...instring(x,**stringa**,stringb) len(string)...", ""),  # code
        ("te", "the, to", "...A no **te** on terminology....", ""),  # too short for anything but a swap
        ("Rhydaman", "Rhodamine", "...The river near **Rhydaman** floods....", ""),  # suggestion not common
    ],
)
def test_not_a_typing_slip(word, suggestions, context, extra):
    issue = make_issue(word, context, suggestions=suggestions)
    category, _confidence, _reason = run(issue, ENGLISH_DOC + extra)
    assert category is not Category.SPELLING_ERROR


def test_typing_slip_in_a_foreign_language_document_is_not_an_english_spelling_error():
    french_doc = "Je vais à la plage avec mes amis. Nous sommes dans le parc et il est très beau.\n" * 20
    issue = make_issue("tres", "...il est **tres** beau....", suggestions="trees", subject="French")
    category, _confidence, _reason = run(issue, french_doc)
    assert category is not Category.SPELLING_ERROR


# ---- a word that is no English word, in a table cell ----------------------------------------------


@pytest.mark.parametrize(
    ("word", "suggestions", "context", "expected"),
    [
        # lower case, five letters or more, unknown to wordfreq: letters mangled by conversion
        (
            "ortunities",
            "fortuities",
            "...| 28 | | **ortunities** for integration of learning |...",
            Category.PARSING_ERROR,
        ),
        (
            "bleffing",
            "bluffing",
            "...| Stage 2 | **bleffing** the mixture | 10 min |...",
            Category.PARSING_ERROR,
        ),
        # a capitalised or camel-cased term, a known word, a short piece: not this signal
        ("Quorvex", "Convex", "...| Stage 2 | **Quorvex** valley | 10 min |...", Category.FALSE_POSITIVE),
        ("myVariable", "my Variable", "...| Variable names | **myVariable** | |...", Category.FALSE_POSITIVE),
        ("qvb", "qv", "...| Stage 2 | **qvb** | 10 min |...", Category.FALSE_POSITIVE),
    ],
)
def test_unknown_word_in_a_table(word, suggestions, context, expected):
    issue = make_issue(word, context, suggestions=suggestions)
    category, _confidence, _reason = run(issue, ENGLISH_DOC)
    assert category is expected


def test_unknown_word_in_a_table_needs_the_frequency_hint():
    issue = make_issue(
        "ortunities", "...| 28 | | **ortunities** for integration |...", suggestions="fortuities"
    )
    hints = {k: v for k, v in document_hints(issue, ENGLISH_DOC).items() if k != "zipf"}
    category, _confidence, _reason = classify(issue, ENGLISH_DOC, hints)
    assert category is Category.FALSE_POSITIVE


# ---- confidence: a dismissal is confident only on strong evidence --------------------------------


@pytest.mark.parametrize(
    ("issue", "extra", "confident"),
    [
        (
            make_issue("Quorvex", "...the **Quorvex** valley...", suggestions="Convex"),
            "Quorvex is a town. The river near Quorvex floods. Visit Quorvex.\n",
            True,
        ),
        (
            make_issue(
                "piscine",
                "...| Places | | **piscine** | swimming pool |...",
                suggestions="piscina",
                subject="French",
            ),
            "Je vais à la plage avec mes amis. Nous sommes dans le parc et il est très beau.\n" * 20,
            True,
        ),
        (make_issue("Rhydaman", "...near **Rhydaman** floods...", suggestions="Rhodamine"), "", False),
        (make_issue("Quorvex", "...the **Quorvex** valley...", suggestions="Convex"), "", False),
    ],
    ids=[
        "term used throughout the document",
        "common word of the language the document teaches",
        "single use of an unknown word",
        "another unknown word",
    ],
)
def test_dismissal_confidence_follows_the_evidence(issue, extra, confident):
    category, confidence, _reason = run(issue, ENGLISH_DOC + extra)
    assert category is Category.FALSE_POSITIVE
    assert (confidence >= 75) is confident


@pytest.mark.parametrize(
    "text",
    [
        "um",
        "xum um",
        "\num\n",
        "é um",
        "_um",
        "1um",
        "ummm erm er uh mm m mmm",
        "umh",
        "um-uh",
        "Um",
        "erm,uh",
        "(um) mm.",
    ],
)
def test_fillers_are_whole_words(text):
    from llm_categoriser.providers.offline.rules import _FILLER

    assert _FILLER.findall(text) == re.findall(r"\b(?:um+|erm?|uh|mm+)\b", text)
