"""A model's ancestry: printing it, and rebuilding any model from its recipes.

Only archive members and seeds keep weight files; every other model is its
recipe. Rebuilding walks up the ancestry to the nearest models that still
have weights and re-materialises the recipes below them, in a scratch
directory; recipes are deterministic, so the weights are the ones evaluated.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rich.tree import Tree

from acdc_engine.errors import AcdcError
from acdc_engine.materialise import materialise
from acdc_engine.recipe import Recipe
from acdc_engine.store import RunStore


def _rows(store: RunStore) -> dict[str, dict]:
    return {r["id"]: dict(r) for r in store.models()}


def lineage_tree(store: RunStore, model_id: str) -> Tree:
    """The ancestry of ``model_id`` as a Rich tree, operators and fitness on each node."""
    rows = _rows(store)
    if model_id not in rows:
        raise AcdcError(f"no model {model_id!r} in {store.run_dir}")

    def label(mid: str) -> str:
        r = rows[mid]
        fit = "-" if r["fitness"] is None else f"{r['fitness']:.3f}"
        recipe = Recipe.from_json(r["recipe"])
        ops = recipe.describe() if recipe.is_seed else f"{recipe.crossover}+{recipe.mutation or 'no mutation'}"
        return f"{mid}  {ops}  fitness {fit}  gen {r['generation']}  [{r['status']}]"

    def grow(node: Tree, mid: str, depth: int) -> None:
        for parent in dict.fromkeys(Recipe.from_json(rows[mid]["recipe"]).parents):
            grow(node.add(label(parent)), parent, depth + 1)

    tree = Tree(label(model_id))
    grow(tree, model_id, 0)
    return tree


def rebuild_weights(store: RunStore, model_id: str, *, base_file: Path, merges: dict, mutations: dict,
                    out_file: Path) -> None:
    """Writes ``model_id``'s weights to ``out_file``, re-materialising ancestors as needed."""
    rows = _rows(store)
    if model_id not in rows:
        raise AcdcError(f"no model {model_id!r} in {store.run_dir}")
    scratch = Path(tempfile.mkdtemp(prefix="acdc-rebuild-"))
    built: dict[str, Path] = {}

    def weights(mid: str) -> Path:
        if mid in built:
            return built[mid]
        row = rows[mid]
        if row["weights"] and Path(row["weights"]).is_file():
            built[mid] = Path(row["weights"])
            return built[mid]
        recipe = Recipe.from_json(row["recipe"])
        if recipe.is_seed:
            raise AcdcError(f"seed {mid} ({recipe.seed_spec}) has no weights at {row['weights']}")
        parents = [weights(p) for p in recipe.parents]
        built[mid] = scratch / f"{mid}.safetensors"
        materialise(recipe, parent_files=parents, base_file=base_file, merge=merges[recipe.crossover],
                    mutation=mutations.get(recipe.mutation) if recipe.mutation else None, out_file=built[mid])
        return built[mid]

    try:
        shutil.copyfile(weights(model_id), out_file)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
