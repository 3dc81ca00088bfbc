"""Built-in plugin ``llm-gibberish`` (``--plugins llm-gibberish``): an LLM's minimal criterion.

Offered beside the always-on heuristic (``gibberish``): the ``[llm]`` model
sees up to 8 of a new model's replies, evenly spread, and answers BROKEN or
OK. BROKEN rejects the model; an unclear reply or an unreachable LLM gives no
opinion, and the heuristic still applies.
"""

from __future__ import annotations

import re

from acdc_engine.api import hookimpl
from .llm_client import LLMPlugin, ask_once, plugin_prompt

SHOWN = 8
_VERDICT = re.compile(r"\b(BROKEN|OK)\b")


def spread(items: list, k: int) -> list:
    """``k`` items evenly spaced over ``items`` (all of them if there are fewer)."""
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


class LLMGibberish(LLMPlugin):
    """The plugin ``llm-gibberish``."""

    @hookimpl
    def acdc_minimal_criterion(self, responses):
        if not responses:
            return None
        shown = "\n\n".join(f"Reply {i + 1}:\n{r[:500]}" for i, r in enumerate(spread(responses, SHOWN)))
        reply = ask_once(self.config, self.hook, plugin_prompt("gibberish", replies=shown)) or ""
        match = _VERDICT.search(reply)
        if match and match.group(1) == "BROKEN":
            why = " ".join(reply[match.end():].split())[:120]
            return f"gibberish: LLM judge{': ' + why if why else ''}"
        return None
