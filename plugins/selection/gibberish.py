"""Built-in plugin ``gibberish`` (always on): the model minimal criterion.

A heuristic on a new model's raw responses to the active tasks. A response is
gibberish when it is

- empty or whitespace only;
- mostly not text: under 60 % of its characters are letters, digits, spaces
  or common punctuation (broken weights often emit rare tokens);
- stuck in a loop: at least 12 words of which under 15 % are distinct.

A model fails when more than half of its responses are gibberish. Seeds are
not judged (they define what a working model is).
"""

from __future__ import annotations

import re
import string

from acdc_engine.api import hookimpl

_TEXT_CHARS = set(string.ascii_letters + string.digits + string.whitespace + string.punctuation)
_WORD = re.compile(r"\w+")


def gibberish_reason(response: str) -> str | None:
    """Why one response is gibberish, or ``None`` if it reads as text."""
    text = response.strip()
    if not text:
        return "empty"
    if sum(c in _TEXT_CHARS for c in text) < 0.6 * len(text):
        return "not text"
    words = _WORD.findall(text.lower())
    if len(words) >= 12 and len(set(words)) < 0.15 * len(words):
        return "repetition loop"
    return None


@hookimpl
def acdc_minimal_criterion(responses):
    reasons = [r for r in map(gibberish_reason, responses) if r]
    if responses and len(reasons) > len(responses) / 2:
        common = max(set(reasons), key=reasons.count)
        return f"gibberish: {len(reasons)}/{len(responses)} responses ({common})"
    return None
