"""The run's models: every model born, its recipe, its weights file and its evaluation-cache key.

A :class:`Population` names new models, records them in the generation's
:class:`~acdc_engine.store.Commit`, finds a file with any model's weights (its
staged file until its generation is committed, then the
:class:`~acdc_engine.run.weight_cache.WeightCache`'s, rebuilt from its ancestry
if it was evicted), and on resume refuses seeds that now resolve to other
weights than the run started with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..digest import recipe_digest
from ..errors import AcdcError
from ..recipe import Recipe
from ..store import Commit, RunStore
from .weight_cache import WeightCache


@dataclass
class ModelRecord:
    """A model of the run."""

    id: str
    recipe: Recipe
    generation: int
    new_file: Path | None = None  # its weights until its generation is committed (staged child, seed's file)
    content: str | None = None  # SHA-256 of its weights file, recorded at commit (its address in the cache)
    reason: str | None = None  # why the minimal criterion rejected it (None: viable, or not judged)


class Population:
    """Every model of one run; ``seed_dirs`` are the resolved seed checkpoints by spec."""

    def __init__(self, *, store: RunStore, weight_cache: WeightCache, base_dir: Path,
                 seed_dirs: dict[str, Path]) -> None:
        self.store, self.weight_cache, self.base_dir, self.seed_dirs = store, weight_cache, base_dir, seed_dirs
        self.records: dict[str, ModelRecord] = {}
        self.digests: dict[str, str] = {}  # model id -> weights digest (evaluation cache key)

    def __getitem__(self, model_id: str) -> ModelRecord:
        return self.records[model_id]

    def seeds(self) -> list[ModelRecord]:
        return [m for m in self.records.values() if m.recipe.is_seed]

    def add(self, recipe: Recipe, gen: int, commit: Commit, weights: Path | None = None) -> ModelRecord:
        """A new model (a seed with its file, or a child to be materialised into a staged file)."""
        model_id = f"m{len(self.records) + 1:04d}"
        model = ModelRecord(model_id, recipe, gen, new_file=weights or self.store.staged_path(model_id))
        if recipe.is_seed:
            model.content = self.store.file_digest(model.new_file)
        self.records[model_id] = model
        self.digests[model_id] = self.cache_key(model)
        commit.born.append(model_id)
        return model

    def weights_file(self, model_id: str) -> Path:
        """A file with the model's weights: its new one, its kept one, or one rebuilt from its ancestry."""
        model = self.records[model_id]
        return model.new_file or self.weight_cache.file(model_id, model.content)

    def cache_key(self, model: ModelRecord) -> str:
        """The evaluation-cache key: a seed's file digest, or a child's from its recipe and its parents' keys."""
        if model.recipe.is_seed:
            return model.content
        return recipe_digest(model.recipe, parent_digests=[self.digests[p] for p in model.recipe.parents],
                             base_digest=self.store.file_digest(self.base_dir / "model.safetensors"))

    def restore(self, rows, seed_specs: list[str]) -> None:
        """The models as committed (the store's rows); one line if a seed spec of ``seed_specs`` now resolves
        to other weights."""
        for row in rows:
            self.records[row["id"]] = ModelRecord(row["id"], Recipe.from_json(row["recipe"]), row["generation"],
                                                  content=row["digest"], reason=row["reason"])
            self.digests[row["id"]] = self.cache_key(self.records[row["id"]])
        self.check_seeds_unchanged(seed_specs)

    def seed_digests(self) -> dict[str, str]:
        """The content digest of each seed spec's weights, as resolved now."""
        return {spec: self.store.file_digest(d / "model.safetensors") for spec, d in self.seed_dirs.items()}

    def check_seeds_unchanged(self, seed_specs: list[str]) -> None:
        """Refuses a resume whose seed specs now resolve to other models than the run started with."""
        recorded = {m.recipe.seed_spec: m.content for m in self.seeds()}
        if not recorded:
            return
        if set(recorded) != set(self.seed_dirs):
            gone, new = sorted(set(recorded) - set(self.seed_dirs)), sorted(set(self.seed_dirs) - set(recorded))
            raise AcdcError(f"the seed specs {', '.join(seed_specs)} now resolve to other models than "
                            f"the run started with (missing: {', '.join(gone) or '-'}; new: {', '.join(new) or '-'})")
        for spec, digest in self.seed_digests().items():
            if digest != recorded[spec]:
                raise AcdcError(f"seed {spec} now resolves to other weights ({self.seed_dirs[spec]}, digest "
                                f"{digest[:12]}) than the run started with ({recorded[spec][:12]})")
