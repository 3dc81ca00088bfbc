"""Crossover parameters per block of layers (mergekit-evolve's ``layer_granularity``).

A recipe whose ``crossover_params`` hold ``layer_granularity = g`` gives some
parameters one value per block of ``g`` consecutive layers: such a parameter
is a list of per-block values (for merge weights, a list of per-block lists).
Before a tensor is merged, :func:`block_params` replaces each by its block's
value and drops ``layer_granularity``, so every merge method, built-in or a
plugin's, sees the parameters of a whole-model recipe.

A tensor's layer is the number after ``layers.``, ``h.``, ``blocks.`` or
``layer.`` in its name (``model.layers.3.mlp.up_proj.weight``: layer 3);
layer ``l`` is in block ``l // g``. Tensors outside the layers follow
mergekit's slices: the embeddings (a name with ``embed``, ``wte`` or ``wpe``)
take the first block's values, every other one (final norm, ``lm_head``) the
last block's. mergekit-evolve asks for a ``g`` that divides the layer count;
here the last block may be shorter (any divisor gives mergekit's blocks
exactly).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointReader
from ..errors import AcdcError

KEY = "layer_granularity"
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
_EMBED = re.compile(r"embed|(?:^|\.)(?:wte|wpe)(?:\.|$)")


def layer_index(name: str) -> int | None:
    """The layer of tensor ``name``, or ``None`` for a tensor outside the layers."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def count_layers(names: Iterable[str]) -> int:
    """The number of layers in a checkpoint with these tensor names (0 without layers)."""
    return max((i for i in map(layer_index, names) if i is not None), default=-1) + 1


def checkpoint_layers(path: Path) -> int:
    """The number of layers of the safetensors checkpoint ``path`` (from its header)."""
    with CheckpointReader(path) as reader:
        return count_layers(reader.keys())


def n_blocks(num_layers: int, granularity: int) -> int:
    """Blocks of ``granularity`` layers (the last one may be shorter); 0 means the whole model, one block."""
    if granularity <= 0 or num_layers <= 0:
        return 1
    return -(-num_layers // granularity)


def _per_block(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, (list, tuple)) for v in value)


def block_params(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The crossover parameters of tensor ``name``: per-block values replaced by its block's (see the module)."""
    if KEY not in params:
        return params
    granularity = params[KEY]
    blocked = {k: v for k, v in params.items() if _per_block(v)}
    counts = {len(v) for v in blocked.values()}
    if not isinstance(granularity, int) or granularity < 1 or len(counts) != 1:
        raise AcdcError(f"crossover parameter {KEY} = {granularity!r} needs a whole number of layers >= 1 and "
                        f"parameters with one value per block (per-block: {', '.join(blocked) or 'none'})")
    (count,) = counts
    layer = layer_index(name)
    if layer is None:
        block = 0 if _EMBED.search(name) else count - 1
    else:
        block = layer // granularity
        if block >= count:
            raise AcdcError(f"crossover parameters hold {count} blocks of {granularity} layers, but tensor {name} "
                            f"is in layer {layer}: the recipe was made for a model with fewer layers")
    out = {k: v for k, v in params.items() if k != KEY}
    out.update({k: list(v[block]) for k, v in blocked.items()})
    return out
