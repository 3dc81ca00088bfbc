# Scoring for procedural task families. This file is copied verbatim into every
# generated family's source, so it must stay self-contained (stdlib ``re`` only).
# Scorers are lenient about format and strict about content; each returns 1.0 or 0.0.
import re

FORMATS = {
    "number": "End your reply with 'Answer: <number>'.",
    "text": "End your reply with 'Answer: <answer>'.",
    "list": "End your reply with 'Answer: <numbers separated by commas>'.",
    "choice": "End your reply with 'Answer: <letter>'.",
    "recall": "End your reply with 'Answer: <answer>'.",
}
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"[\"'`]([^\"'`]+)[\"'`]")
_LETTER = re.compile(r"(?<![A-Za-z])([A-D])(?![A-Za-z])")


def _normal(text):
    """Lower case, no quotes, single spaces, no trailing punctuation."""
    text = re.sub(r"[\"'`*]", "", text.lower())
    return " ".join(text.split()).strip(" .,!?;:")


def _numbers(text):
    return [float(n.replace(",", "")) for n in _NUMBER.findall(text)]


def score_number(t, submission):
    """The last number in the submission equals the answer."""
    numbers = _numbers(submission)
    return float(bool(numbers) and abs(numbers[-1] - t["answer"]) < 1e-6)


def score_list(t, submission):
    """The numbers in the submission, in order, are exactly the answer list."""
    found = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", submission)]
    return float(found == [float(n) for n in t["answer"]])


def score_text(t, submission):
    """The whole submission, its last quoted token or its last word is the answer."""
    expected = _normal(t["answer"])
    quoted = _QUOTED.findall(submission)
    words = _normal(submission).split()
    candidates = [_normal(submission), _normal(quoted[-1]) if quoted else None, words[-1] if words else None]
    return float(expected in candidates)


def _mentions(options, submission):
    """The options whose text appears as whole words in the submission."""
    text = " " + _normal(submission) + " "
    return [o for o in options if re.search(r"(?<!\w)" + re.escape(_normal(o)) + r"(?!\w)", text)]


def score_recall(t, submission):
    """The correct option's text appears and no other option's text does."""
    return float(_mentions(t["options"], submission) == [t["answer"]])


def score_choice(t, submission):
    """A single standalone option letter decides; otherwise the option text does."""
    letters = set(_LETTER.findall(submission))
    if len(letters) == 1:
        return float(letters == {t["answer"]})
    correct = t["options"]["ABCD".index(t["answer"])]
    return float(_mentions(t["options"], submission) == [correct])


SCORERS = {"number": score_number, "list": score_list, "text": score_text,
           "choice": score_choice, "recall": score_recall}
