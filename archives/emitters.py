"""The emitter: proposes child recipes from parents drawn from the archive."""

from __future__ import annotations

import numpy as np
from ribs.emitters import EmitterBase

from acdc_engine.models.operators import MergeMethod, MutationMethod
from acdc_engine.recipe import Recipe


class RecipeEmitter(EmitterBase):
    """Asks for ``batch_size`` recipes per generation.

    Each recipe's parents are drawn uniformly (with replacement) from the
    archive's members; merge and mutation parameters are drawn by the
    operators' ``draw_params``; each child gets its own integer noise seed.
    Call :meth:`reseed` with a per-generation seed so a resumed run asks for
    the same recipes.
    """

    def __init__(
        self,
        archive,
        *,
        batch_size: int,
        merge: MergeMethod,
        mutation: MutationMethod | None,
        config,
        seed: int | None = None,
    ) -> None:
        super().__init__(archive, solution_dim=(), bounds=None, lower_bounds=None, upper_bounds=None)
        self.batch_size = batch_size
        self._merge = merge
        self._mutation = mutation
        self._config = config  # the run's Config, which the operators draw their parameters from
        self._rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def state(self) -> None:
        """Nothing carries over between generations (each is reseeded), so there is no state to keep."""
        return None

    def ask(self) -> np.ndarray:
        ids = self.archive.member_ids()
        recipes = np.empty(self.batch_size, dtype=object)
        for i in range(self.batch_size):
            parents = tuple(str(ids[j]) for j in self._rng.integers(len(ids), size=self._merge.n_parents))
            recipes[i] = Recipe.make(
                parents=parents,
                crossover=self._merge.name,
                crossover_params=self._merge.draw_params(len(parents), self._rng, self._config),
                mutation=self._mutation.name if self._mutation else None,
                mutation_params=self._mutation.draw_params(self._rng, self._config) if self._mutation else None,
                seed=int(self._rng.integers(2**31)),
            )
        return recipes
