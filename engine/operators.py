"""Typed model operators that plugins register by name.

A merge (crossover) or mutation method is a small function over tensors,
applied one tensor at a time by :mod:`acdc_engine.materialise`. Parameters
that hold for the whole model (merge weights, noise scale) are drawn once per
child by ``draw_params`` and written into its recipe, so the recipe alone
rebuilds the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

#: (tensor name, parents' tensors, base tensor, params, out=None) -> child tensor.
#: ``parents`` is a lazy sequence (each item mapped on access); a function may
#: write into ``out`` (a resident tensor of the same dtype) and return it.
MergeFn = Callable[..., torch.Tensor]
#: (tensor name, tensor, params, generator seeded for this tensor) -> mutated tensor (in place allowed)
MutateFn = Callable[[str, torch.Tensor, dict[str, Any], torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class MergeMethod:
    """A crossover operator: merges parents tensor by tensor.

    ``draw_params(n_parents, rng, evolution_config)`` returns the JSON-able
    parameters of one child (e.g. its merge weights).
    """

    name: str
    merge: MergeFn
    draw_params: Callable[[int, np.random.Generator, Any], dict[str, Any]]
    n_parents: int = 2


@dataclass(frozen=True)
class MutationMethod:
    """A mutation operator: perturbs one tensor with a seeded generator.

    ``draw_params(rng, evolution_config)`` returns the JSON-able parameters of
    one child. ``applies_to(name, tensor)`` says which tensors it touches.
    """

    name: str
    mutate: MutateFn
    draw_params: Callable[[np.random.Generator, Any], dict[str, Any]]
    applies_to: Callable[[str, torch.Tensor], bool]
