"""Answer extraction: the part of a model's response that is its submission."""

from __future__ import annotations

import re

_ANSWER = re.compile(r"answer\s*(?:is)?\s*[:：]", re.IGNORECASE)


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(response: str) -> str:
    """The submission in a response, tried in this order:

    1. the content of the last ``\\boxed{...}`` (nested braces allowed);
    2. the first line after the last ``####``;
    3. the first line after the last ``Answer:`` (also ``answer is:``), any case;
    4. otherwise the whole response, stripped.

    Task families' ``score()`` receive this string and may parse it further.
    """
    boxed = _last_boxed(response)
    if boxed is not None:
        return boxed.strip()
    if "####" in response:
        tail = response.rsplit("####", 1)[1].strip()
        return tail.splitlines()[0].strip() if tail else ""
    matches = list(_ANSWER.finditer(response))
    if matches:
        tail = response[matches[-1].end():].strip()
        return tail.splitlines()[0].strip() if tail else ""
    return response.strip()
