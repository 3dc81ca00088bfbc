"""Turns a recipe into weights, tensor by tensor, from the parents' files.

Parents and the base are opened lazily with ``safetensors.safe_open``; only
one tensor of each is in memory at a time, plus the child being written.
Each tensor's mutation noise comes from a generator seeded by the recipe's
seed and the tensor's name, so the same recipe on the same parents gives
bitwise-identical weights whatever the order of tensors.
"""

from __future__ import annotations

import os
import zlib
from contextlib import ExitStack
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from acdc_engine.errors import AcdcError
from acdc_engine.operators import MergeMethod, MutationMethod
from acdc_engine.recipe import Recipe


def tensor_seed(recipe_seed: int, name: str) -> int:
    """The noise seed of one tensor of one child."""
    return (recipe_seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


def open_checkpoint(stack: ExitStack, path: Path):
    try:
        return stack.enter_context(safe_open(str(path), framework="pt"))
    except (SafetensorError, OSError) as exc:
        raise AcdcError(f"cannot read weights {path}: {exc}") from None


def check_compatible(files: dict[str, object]) -> list[str]:
    """Tensor names shared by all checkpoints; one line naming the first mismatch."""
    (ref_label, ref), *others = files.items()
    names = list(ref.keys())
    for label, handle in others:
        theirs = set(handle.keys())
        missing = sorted(set(names) - theirs) or sorted(theirs - set(names))
        if missing:
            raise AcdcError(f"models {ref_label} and {label} differ: tensor {missing[0]} is in only one of them")
        for name in names:
            a, b = ref.get_slice(name).get_shape(), handle.get_slice(name).get_shape()
            if a != b:
                raise AcdcError(f"models {ref_label} and {label} differ: tensor {name} has shape {a} vs {b}")
    return names


def materialise(
    recipe: Recipe,
    *,
    parent_files: list[Path],
    base_file: Path,
    merge: MergeMethod | None,
    mutation: MutationMethod | None,
    out_file: Path,
) -> None:
    """Builds the child of ``recipe`` and writes it atomically to ``out_file``."""
    cparams, mparams = dict(recipe.crossover_params), dict(recipe.mutation_params)
    out: dict[str, torch.Tensor] = {}
    with ExitStack() as stack:
        parents = [open_checkpoint(stack, p) for p in parent_files]
        base = open_checkpoint(stack, base_file)
        names = check_compatible({"base": base, **{pid: h for pid, h in zip(recipe.parents, parents)}})
        for name in names:
            tensors = [h.get_tensor(name) for h in parents]
            child = merge.merge(name, tensors, base.get_tensor(name), cparams) if merge else tensors[0]
            if mutation is not None and mutation.applies_to(name, child):
                gen = torch.Generator().manual_seed(tensor_seed(recipe.seed, name))
                child = mutation.mutate(name, child, mparams, gen)
            out[name] = child.contiguous()
    tmp = out_file.with_suffix(".partial")
    save_file(out, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out_file)
