"""A small synthetic corpus for the cascade's tests: documents, flags and a model's answers.

Each document repeats a handful of word patterns whose "model answer" follows from what the
classifier can see (a proper noun that occurs often in the document is a false positive, a
typo with a close suggestion a spelling error, a split word a parsing error), with a little
noise, and one word answered either way at random, so that the thresholds have something to
decide.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from conftest import write_doc

from llm_categoriser.layout import Layout
from llm_categoriser.lt_report import issue_key
from llm_categoriser.records import BatchResult, FlagResult

SUBJECTS = ("Geography", "History")
PROPER = ("Aberystwyth", "Pontypridd", "Llandudno", "Caerphilly", "Ynysybwl", "Machynlleth")
TYPOS = (("recieve", "receive"), ("seperate", "separate"), ("definately", "definitely"), ("wich", "which"))
SPLITS = (("ment", "comment"), ("tion", "question"), ("ing", "thing"))
HEADER = ["Subject", "Filename", "Page", "Rule ID", "Type", "Issue", "Message", "Suggestions"]
HEADER += ["Highlighted Context", "Pass Code"]


def build_corpus(root: Path, documents: int = 8, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """Write ``root/Documents`` (report and Markdown); return the report and key -> answer."""
    rng = random.Random(seed)
    docs_dir = root / "Documents"
    rows: list[list[str]] = []
    answers: dict[str, str] = {}
    seen: dict[tuple[str, ...], int] = {}
    for n in range(documents):
        subject = SUBJECTS[n % len(SUBJECTS)]
        filename = f"doc-{n:02d}.md"
        pages = []
        for page in range(1, 4):
            lines = [f"{{{page}}}------------------------------------------------"]
            for name in PROPER:
                lines.append(f"The visit to {name} began early, and {name} was busy.")
            lines.append("We recieve the seperate reports, wich are definately useful.")
            lines.append("The com ment and the ques tion were about every thing.")
            pages.append("\n".join(lines))
        write_doc(docs_dir, subject, filename, "\n".join(pages) + "\n")

        flags: list[tuple[int, str, str, str, str]] = []  # page, word, suggestions, context, answer
        for page in range(1, 4):
            for name in rng.sample(PROPER, 4):
                context = f"...The visit to **{name}** began early, and..."
                flags.append((page, name, name.lower() + "s", context, "FALSE_POSITIVE"))
            for typo, right in rng.sample(TYPOS, 2):
                flags.append(
                    (page, typo, right, f"...We **{typo}** the seperate reports...", "SPELLING_ERROR")
                )
            for part, _whole in rng.sample(SPLITS, 2):
                flags.append(
                    (page, part, "meant, mint", f"...The com **{part}** and the...", "PARSING_ERROR")
                )
            for _ in range(2):  # a word the model answers either way: the classifier must not
                answer = rng.choice(["STYLISTIC_PREFERENCE", "FALSE_POSITIVE"])
                flags.append((page, "whilst", "while", "...The visit **whilst** busy...", answer))
        rule, message = "MORFOLOGIK_RULE_EN_GB", "Possible spelling mistake found."
        for page, word, suggestions, context, answer in flags:
            ident = (subject, filename, rule, word, context)
            occurrence = seen.get(ident, 0)
            seen[ident] = occurrence + 1
            rows.append(
                [subject, filename, str(page), rule, "misspelling", word, message, suggestions, context, "LT"]
            )
            noisy = rng.random() < 0.04
            answers[issue_key(*ident, occurrence)] = "STYLISTIC_PREFERENCE" if noisy else answer
    report = docs_dir / "language-check-report.csv"
    with report.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return report, answers


def write_cache(data_dir: Path, answers: dict[str, str], provider: str, fingerprint: str) -> Path:
    """One cached batch answer holding ``answers``, as the categorise step saves it."""
    from llm_categoriser.answers import save_answer

    result = BatchResult(
        batch_id="p0001-0003",
        fingerprint=fingerprint,
        provider=provider,
        model=f"{provider}-model",
        items={
            key: FlagResult(status="ok", error_category=category, confidence_score=90, reasoning="r")
            for key, category in answers.items()
        },
        requests=1,
    )
    layout = Layout("Documents", str(data_dir))
    assert save_answer(layout, result)
    return Path(layout.cached_answer(fingerprint))
