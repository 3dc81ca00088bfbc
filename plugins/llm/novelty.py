"""Built-in plugin ``novelty`` (``--plugins novelty``): only interestingly new tasks enter.

A candidate's description is embedded (hook ``acdc_task_embeddings``) and
compared by cosine similarity with every task accepted so far in the run.
Archived tasks at or above ``[novelty] threshold`` are its near neighbours;
a candidate without any is novel. With near neighbours:

- ``judge = "llm"``: the ``[llm]`` model sees the candidate and its nearest
  ``neighbours`` and answers YES (interestingly new) or NO;
- ``judge = "rule"`` (and whenever the LLM gives no clear YES or NO): the
  deterministic fallback, any near neighbour rejects the candidate.
"""

from __future__ import annotations

import re

import numpy as np

from acdc_engine.api import hookimpl
from .llm_client import LLMError, LLMPlugin, plugin_prompt, shared_llm

_VERDICT = re.compile(r"\b(YES|NO)\b", re.IGNORECASE)


def near_neighbours(candidate, archive, embeddings: np.ndarray, *, threshold: float, k: int) -> list[tuple]:
    """The ``k`` archived specs most similar to ``candidate`` at or above ``threshold``, as (spec, similarity).

    ``embeddings`` holds the candidate's row first, then one row per archived spec.
    """
    sims = embeddings[1:] @ embeddings[0]
    order = np.argsort(-sims, kind="stable")[:k]
    return [(archive[i], float(sims[i])) for i in order if sims[i] >= threshold]


def _describe(spec) -> str:
    return f"{spec.name} ({spec.capability}, difficulty {spec.difficulty}): {spec.description}"


def llm_verdict(llm, candidate, neighbours) -> bool | None:
    """True if the LLM calls the candidate interestingly new, False if not, None if unclear."""
    shown = "\n".join(f"- {_describe(s)} (similarity {sim:.2f})" for s, sim in neighbours)
    question = plugin_prompt("novelty", candidate=_describe(candidate), neighbours=shown)
    reply = llm.chat([[{"role": "user", "content": question}]], temperature=0.0, max_tokens=64)[0]
    match = _VERDICT.search(reply)
    return None if match is None else match.group(1).upper() == "YES"


class Novelty(LLMPlugin):
    """The plugin ``novelty``."""

    @hookimpl
    def acdc_task_novelty(self, candidate, archive):
        if not archive:
            return None
        cfg = self.config.section("novelty")  # declared by the embeddings plugin
        embeddings = self.hook.acdc_task_embeddings(texts=[candidate.description] + [s.description for s in archive])
        neighbours = near_neighbours(candidate, archive, embeddings, threshold=cfg.threshold, k=cfg.neighbours)
        if not neighbours:
            return None
        nearest, sim = neighbours[0]
        if cfg.judge == "llm":
            try:
                verdict = llm_verdict(shared_llm(self.config, self.hook), candidate, neighbours)
            except LLMError:
                verdict = None
            if verdict is True:
                return None
            if verdict is False:
                return f"not novel: judged not interestingly new beside {nearest.name!r} (similarity {sim:.2f})"
        return f"not novel: similarity {sim:.2f} to {nearest.name!r} (threshold {cfg.threshold:g})"
