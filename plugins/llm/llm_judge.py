"""Built-in plugin ``llm-judge`` (``--plugins llm-judge``): the ``acdc_judge`` hook by the ``[llm]`` model.

The model grades an answer against a rubric from 0 to 10 (prompt in
``prompts/judge.md``); the grade is scaled to [0, 1]. ``None`` when no grade
can be read or the LLM cannot be reached.
"""

from __future__ import annotations

import re

from acdc_engine.api import hookimpl
from .llm_client import LLMPlugin, ask_once, plugin_prompt

_GRADE = re.compile(r"(?<![\d.])(10|\d)(?![\d])")


class LLMJudge(LLMPlugin):
    """The plugin ``llm-judge``."""

    @hookimpl
    def acdc_judge(self, question, answer, rubric):
        reply = ask_once(self.config, self.hook,
                         plugin_prompt("judge", question=question, answer=answer, rubric=rubric)) or ""
        match = _GRADE.search(reply)
        return None if match is None else int(match.group(1)) / 10
