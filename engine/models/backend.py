"""What the engine needs from a generation backend."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol


class Backend(Protocol):
    """One resident model that answers prompts.

    ``load_weights`` swaps a checkpoint's tensors into the resident model in
    place; the model is never re-instantiated per candidate. A backend whose
    weights live in this process may also offer ``tensors()`` (checkpoint
    name -> resident tensor) so a recipe can be materialised straight into it.
    ``generate`` answers instructions, greedily unless asked to sample (the
    backend applies the chat template).
    A backend may keep ``generated_tokens``, a running count of the tokens it
    generated (up to each answer's end); the loop records it per generation.
    Answers must be a pure function of (weights, instruction, decoding
    settings): the engine caches them under that key.
    """

    def load_weights(self, weights_file: Path) -> None: ...

    def generate(
        self,
        instructions: list[str],
        *,
        max_new_tokens: int,
        on_batch: Callable[[int], None] | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[str]:
        """Answers each instruction; ``on_batch(n)`` is called as answers are done, with how many were done
        since its last call (a backend may call it once per batch, or per finished answer; the calls add up
        to ``len(instructions)``). Greedy at ``temperature`` 0, else sampled with ``seed``."""
        ...

    def mean_logprob(self, instructions: list[str], responses: list[str]) -> list[float]:
        """Mean per-token log-probability of each response after its instruction
        (used by ``acdc-engine evaluate``'s best-of-N judge; optional for runs)."""
        ...

    def reply_logprobs(self, instruction: str, replies: list[str]) -> list[float]:
        """Total log-probability of each reply as the answer to ``instruction`` (multiple choice scored
        by likelihood, in the discovery benchmark; optional for runs)."""
        ...

    def continuation_logprobs(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """Per (context, continuation) of raw text (no chat template): the continuation's total
        log-probability after the context, and whether greedy decoding would produce it token by token.
        An empty context scores the text from the start. (``acdc-engine evaluate --lm-eval``'s
        ``loglikelihood`` requests; optional for runs.)"""
        ...

    def complete(self, texts: list[str], *, max_new_tokens: int, stop: tuple[str, ...] = (),
                 temperature: float = 0.0, seed: int | None = None) -> list[str]:
        """Raw-text continuation of each text (no chat template), cut before the first ``stop`` string;
        greedy at ``temperature`` 0, else sampled with ``seed`` (``--lm-eval``'s ``generate_until``
        requests; optional for runs)."""
        ...

    def close(self) -> None: ...
