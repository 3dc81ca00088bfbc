"""A model's ancestry: printing it, and rebuilding any model from its recipes.

Only archive members and seeds keep weight files (and members may lose
theirs to the disk budget); every other model is its recipe. Rebuilding
walks up the ancestry to the nearest models whose files are kept and
re-materialises the recipes below them, in a scratch directory; recipes are
deterministic, so each rebuilt file must hash to the digest recorded when
the model was born. A kept file is used only once its bytes hash to the
recorded digest (:meth:`~acdc_engine.store.RunStore.kept_file`): a damaged
one is named in a warning and its model rebuilt from its recipe, a seed's
taken from the seed's own folder where that still holds the recorded weights.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.tree import Tree

from ..digest import file_digest
from ..errors import AcdcError
from ..files import copy_new
from .materialise import materialise
from .operators import OperatorRegistry
from ..recipe import Recipe
from ..store import RunStore


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


SCRATCH_PREFIX = ".acdc-rebuild-"


def remove_stale_scratch(folder: Path) -> None:
    """Removes the scratch folders of rebuilds whose process is gone (a killed export leaves one)."""
    for path in folder.glob(f"{SCRATCH_PREFIX}*"):
        pid = path.name[len(SCRATCH_PREFIX):].split("-")[0]
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _to_rebuild(store: RunStore, rows: dict, model_id: str) -> set[str]:
    """``model_id`` and its ancestors that have no kept file (those a rebuild materialises)."""
    todo, stack = set(), [model_id]
    while stack:
        mid = stack.pop()
        if mid in todo or store.kept_file(rows[mid]["digest"])[0] is not None:
            continue
        recipe = Recipe.from_json(rows[mid]["recipe"])
        if not recipe.is_seed:
            todo.add(mid)
            stack.extend(recipe.parents)
    return todo


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def rebuild_weights(store: RunStore, model_id: str, *, hook, base_file: Path, out_file: Path,
                    on_built: Callable[[int, int], None] | None = None,
                    seed_files: dict[str, Path] | None = None,
                    on_damaged: Callable[[str, str, str], None] | None = None) -> None:
    """Writes ``model_id``'s weights to ``out_file`` (as a new file), re-materialising ancestors as needed.

    Operators are looked up by name through ``hook``; a rebuilt file whose
    digest is not the recorded one is refused with one line naming the model.
    ``on_built(done, total)`` is told after each model materialised. A kept
    file that does not hash to its recorded digest is reported to
    ``on_damaged(model_id, digest, problem)`` (default: a warning on stderr) and not
    used: the model is rebuilt from its recipe, or for a seed copied from
    ``seed_files[spec]`` (its resolved ``model.safetensors``) if that holds the
    recorded weights; otherwise one line naming the damaged file.
    """
    on_damaged = on_damaged or (lambda mid, digest, problem: _warn(f"{problem}; {mid} is rebuilt without it"))
    rows = _rows(store)
    if model_id not in rows:
        raise AcdcError(f"no model {model_id!r} in {store.run_dir}")
    operators = OperatorRegistry(hook)
    out_file = Path(out_file)
    remove_stale_scratch(out_file.parent)
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=out_file.parent))
    built: dict[str, Path] = {}
    total = len(_to_rebuild(store, rows, model_id))

    def weights(mid: str) -> Path:
        if mid in built:
            return built[mid]
        row = rows[mid]
        kept, problem = store.kept_file(row["digest"])
        if kept is not None:
            built[mid] = kept
            return kept
        if problem:
            on_damaged(mid, row["digest"], problem)
        recipe = Recipe.from_json(row["recipe"])
        if recipe.is_seed:
            own = (seed_files or {}).get(recipe.seed_spec)
            if own is not None and own.is_file() and file_digest(own) == row["digest"]:
                built[mid] = own
                return own
            raise AcdcError(problem or f"seed {mid} ({recipe.seed_spec}) has no weights at "
                            f"{store.weights_path(row['digest'])}")
        parents = [weights(p) for p in recipe.parents]
        built[mid] = scratch / f"{mid}.safetensors"
        merge, mutation = operators.for_recipe(recipe)
        materialise(recipe, parent_files=parents, base_file=base_file, merge=merge, mutation=mutation,
                    out_file=built[mid])
        if on_built:
            on_built(sum(p.parent == scratch for p in built.values()), total)
        got = file_digest(built[mid])
        if got != row["digest"]:
            raise AcdcError(f"rebuilt weights of {mid} do not match the recorded ones (digest {got[:12]}, "
                            f"recorded {row['digest'][:12]}): its recipe no longer gives the same weights")
        return built[mid]

    try:
        source = weights(model_id)
        if source.parent == scratch:
            os.replace(source, out_file)
        else:  # a new file: never written through a link that out_file may be (to a seed, say)
            copy_new(source, out_file)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
