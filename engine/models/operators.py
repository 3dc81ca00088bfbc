"""Typed model operators that plugins register by name.

A merge (crossover) or mutation method is a small function over tensors,
applied one tensor at a time by :mod:`acdc_engine.models.materialise`. Parameters
that hold for the whole model (merge weights, noise scale) are drawn once per
child by ``draw_params`` and written into its recipe, so the recipe alone
rebuilds the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import AcdcError

#: (tensor name, parents' tensors, base tensor, params, out=None) -> child tensor.
#: ``parents`` is a lazy sequence (each item mapped on access); a function may
#: write into ``out`` (a resident tensor of the same dtype) and return it.
MergeFn = Callable[..., torch.Tensor]
#: (tensor name, tensor, params, generator seeded for this tensor) -> mutated tensor (in place allowed)
MutateFn = Callable[[str, torch.Tensor, dict[str, Any], torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class MergeMethod:
    """A crossover operator: merges parents tensor by tensor.

    ``draw_params(n_parents, rng, config)`` returns the JSON-able
    parameters of one child (e.g. its merge weights); ``config`` is the run's
    :class:`~acdc_engine.config.Config`, so a plugin reads its own section.
    """

    name: str
    merge: MergeFn
    draw_params: Callable[[int, np.random.Generator, Any], dict[str, Any]]
    n_parents: int = 2


@dataclass(frozen=True)
class MutationMethod:
    """A mutation operator: perturbs one tensor with a seeded generator.

    ``draw_params(rng, config)`` returns the JSON-able parameters of
    one child (``config`` as for :class:`MergeMethod`). ``applies_to(name, tensor)`` says which tensors it touches.
    """

    name: str
    mutate: MutateFn
    draw_params: Callable[[np.random.Generator, Any], dict[str, Any]]
    applies_to: Callable[[str, torch.Tensor], bool]


class OperatorRegistry:
    """Every merge and mutation method the plugins offer (hooks ``acdc_merge_methods``,
    ``acdc_mutation_methods``), by name: the one table from which children are made (by the config's
    choice) and rebuilt (by the names in each recipe). A name offered by two plugins is an error."""

    def __init__(self, hook) -> None:
        self.merges: dict[str, MergeMethod] = _one_table(hook.acdc_merge_methods())
        self.mutations: dict[str, MutationMethod] = _one_table(hook.acdc_mutation_methods())

    def merge(self, name: str) -> MergeMethod:
        """The merge method ``name``; an unknown one is refused in one line listing the known ones."""
        return _pick(self.merges, name, "crossover")

    def mutation(self, name: str | None) -> MutationMethod | None:
        """The mutation method ``name`` (``None`` or ``"none"``: no mutation)."""
        return None if name in (None, "none") else _pick(self.mutations, name, "mutation")

    def for_recipe(self, recipe) -> tuple[MergeMethod | None, MutationMethod | None]:
        """The operators a recipe names, to materialise or rebuild it (no merge for a recipe of one parent
        without a crossover: the child starts as a copy of it)."""
        if recipe.crossover is None and len(recipe.parents) != 1:
            raise AcdcError(f"a recipe without a crossover has one parent, not {len(recipe.parents)}")
        merge = None if recipe.crossover is None else self.merge(recipe.crossover)
        return merge, self.mutation(recipe.mutation)


def _one_table(results: list[dict | None]) -> dict:
    merged: dict = {}
    for table in results:
        for name, value in (table or {}).items():
            if name in merged:
                raise AcdcError(f"two plugins offer an operator named {name!r}; rename one of them")
            merged[name] = value
    return merged


def _pick(table: dict, name: str, what: str):
    if name not in table:
        known = ", ".join(sorted(table)) or "none (enable the 'merge' plugin)"
        raise AcdcError(f"unknown {what} method {name!r}; known: {known}")
    return table[name]
