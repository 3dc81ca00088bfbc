"""Built-in plugin ``judge-overlap`` (optional): answers ``acdc_judge`` without a model.

Scores an answer by SQuAD-style token F1 against the rubric's reference
answer: the text after ``Expected answer:`` in the rubric if it has such a
line, else the whole rubric. Lower-cased, punctuation and articles dropped.
A cheap, deterministic stand-in for a model judge, good for short factual
answers and useless for open-ended ones.
"""

from __future__ import annotations

import re
from collections import Counter

from acdc_engine.api import hookimpl

REFERENCE = re.compile(r"^\s*expected answer\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
ARTICLES = {"a", "an", "the"}


def tokens(text: str) -> list[str]:
    """Lower-cased words and numbers, without articles."""
    return [w for w in re.findall(r"[^\W_]+", text.lower()) if w not in ARTICLES]


def token_f1(answer: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (1.0 when both are empty)."""
    got, want = tokens(answer), tokens(reference)
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


@hookimpl
def acdc_judge(question: str, answer: str, rubric: str) -> float:
    """Token F1 of ``answer`` against the rubric's expected answer."""
    match = REFERENCE.search(rubric)
    return token_f1(answer, match.group(1) if match else rubric)
