"""A CMA-ES emitter: pyribs' CMA-ES over the merge weights of one parent group.

The ES searches the continuous part of a recipe: the merge weights, one per
parent (per weighted input for mergekit's methods), over the whole model.
Per-layer-block weights are not offered: every merge operator takes one
weight per parent for all tensors, and per-block weights would change the
operators themselves. Parents: a group of ``n_parents`` archive members
(distinct where the archive has enough), drawn uniformly at the first ask and
at every ES restart, and kept until then. The ES starts at equal weights (1
per parent) with step ``cma_sigma0`` within ``cma_weight_bounds``; each child's
recipe holds its ES sample as its ``crossover_params`` weights, so the recipe
alone rebuilds it.

The archive's verdicts move the ES (pyribs' batch-first ask/tell, as in its
``EvolutionStrategyEmitter`` with ``selection_rule="filter"``): children are
ranked by pyribs' ``TwoStageImprovementRanker`` (status, then improvement)
where the archive's ``add`` reports an improvement ``value`` (MAP-Elites), else
by its ``TwoStageObjectiveRanker`` (status, then fitness: DNS, NSGA-II,
top-fitness); the children that entered the archive are the ES's parents. It
restarts (new parents, equal weights, ``cma_sigma0``) on CMA-ES's convergence
tests, when no child entered (``cma_restart = "no_improvement"``), and when a
parent has left the archive.

Resuming: :meth:`state` is the ES's whole state as JSON-able data (the run
store keeps it in each generation's commit) and :meth:`load_state` puts it
back; the random draws come from :meth:`reseed`, called each generation.
"""

from __future__ import annotations

import numpy as np
from ribs.emitters import EmitterBase
from ribs.emitters.opt import CMAEvolutionStrategy
from ribs.emitters.rankers import TwoStageImprovementRanker, TwoStageObjectiveRanker

from acdc_engine.errors import AcdcError
from acdc_engine.operators import MergeMethod, MutationMethod
from acdc_engine.recipe import Recipe

#: The crossover parameters that hold merge weights: the merge plugin's, and mergekit's.
WEIGHT_KEYS = ("weights", "weight")
_VECTORS = ("mean", "pc", "ps")
_MATRICES = ("cov", "eigenbasis", "eigenvalues", "invsqrt")


class CMAEmitter(EmitterBase):
    """Asks for ``batch_size`` recipes per generation from a CMA-ES over merge weights (see the module)."""

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
        self._merge, self._mutation, self._config, self._evo = merge, mutation, config, config.evolution
        template = merge.draw_params(merge.n_parents, np.random.default_rng(0), config)
        self._key = next((k for k in WEIGHT_KEYS if isinstance(template.get(k), list)), None)
        if self._key is None:
            raise AcdcError(f"evolution.emitter = 'cma-es' searches merge weights, but crossover {merge.name!r} has "
                            f"none (its parameters: {', '.join(template) or 'none'}); use a weighted merge such as "
                            "'linear'")
        self.dim = len(template[self._key])
        self._improvement, self._objective = TwoStageImprovementRanker(), TwoStageObjectiveRanker()
        self.parents: tuple[str, ...] = ()
        self.restarts = 0  # restarts after the first parent draw
        self.itrs = 0  # tells
        self._opt = self._new_opt(None)
        self._opt.reset(np.ones(self.dim))
        self.reseed(seed)

    def _new_opt(self, seed) -> CMAEvolutionStrategy:
        low, high = self._evo.cma_weight_bounds
        return CMAEvolutionStrategy(sigma0=self._evo.cma_sigma0, solution_dim=self.dim,
                                    batch_size=self._evo.offspring_per_generation, seed=seed, dtype=np.float64,
                                    lower_bounds=low, upper_bounds=high)

    @property
    def mean(self) -> np.ndarray:
        """The ES's current mean: the merge weights it centres on."""
        return np.array(self._opt.mean)

    @property
    def sigma(self) -> float:
        """The ES's current step size."""
        return float(self._opt.sigma)

    def reseed(self, seed: int | None) -> None:
        """New random draws (ES samples, parents, mutation seeds) from ``seed``; the ES's state carries over."""
        opt_seed, draw_seed = np.random.SeedSequence(seed).spawn(2)
        carried = self.state()
        self._opt = self._new_opt(opt_seed)
        self._rng = np.random.default_rng(draw_seed)
        self.load_state(carried)

    def _restart(self) -> None:
        """New parents drawn from the archive; the ES back at equal weights and ``cma_sigma0``."""
        ids = sorted(self.archive.member_ids())
        n = self._merge.n_parents
        picks = self._rng.choice(len(ids), size=n, replace=len(ids) < n)
        self.restarts += bool(self.parents)
        self.parents = tuple(ids[i] for i in picks)
        self._opt.reset(np.ones(self.dim))

    def ask(self) -> np.ndarray:
        """``batch_size`` recipes of the parent group, their merge weights sampled by the ES."""
        if not self.parents or not set(self.parents) <= set(self.archive.member_ids()):
            self._restart()
        samples = self._opt.ask(self.batch_size)
        recipes = np.empty(self.batch_size, dtype=object)
        for i, weights in enumerate(samples):
            params = self._merge.draw_params(len(self.parents), self._rng, self._config)
            params[self._key] = [float(w) for w in weights]
            recipes[i] = Recipe.make(
                parents=self.parents,
                crossover=self._merge.name,
                crossover_params=params,
                mutation=self._mutation.name if self._mutation else None,
                mutation_params=self._mutation.draw_params(self._rng, self._config) if self._mutation else None,
                seed=int(self._rng.integers(2**31)),
            )
        return recipes

    def tell(self, solution, objective, measures, add_info, **fields) -> None:
        """Ranks the last batch by the archive's verdicts and moves the ES; restarts where due."""
        self.itrs += 1
        status = np.asarray(add_info["status"])
        if "value" in add_info:  # non-viable rows have no value: they rank last
            value = np.asarray(add_info["value"], dtype=float)
            ranker, info = self._improvement, {"status": status, "value": np.where(np.isnan(value), -np.inf, value)}
        else:
            ranker, info = self._objective, {"status": status}
        data = {"objective": np.asarray(objective, dtype=float), "measures": np.asarray(measures)}
        indices, values = ranker.rank(self, self.archive, data, info)
        added = int(status.astype(bool).sum())
        self._opt.tell(indices, values, added)
        if self._opt.check_stop(values[indices]) or (self._evo.cma_restart == "no_improvement" and added == 0):
            self._restart()

    def state(self) -> dict:
        """Everything that carries over between generations, as JSON-able data (floats round-trip exactly)."""
        opt, cov = self._opt, self._opt.cov
        return {
            "parents": list(self.parents), "restarts": self.restarts, "itrs": self.itrs,
            "sigma": float(opt.sigma), "current_eval": int(opt.current_eval),
            **{k: getattr(opt, k).tolist() for k in _VECTORS},
            **{k: getattr(cov, k).tolist() for k in _MATRICES},
            "condition_number": float(cov.condition_number), "updated_eval": int(cov.updated_eval),
        }

    def load_state(self, state: dict) -> None:
        """Puts back a :meth:`state`."""
        self._opt.reset(np.ones(self.dim))
        opt, cov = self._opt, self._opt.cov
        self.parents, self.restarts, self.itrs = tuple(state["parents"]), state["restarts"], state["itrs"]
        opt.sigma, opt.current_eval = state["sigma"], state["current_eval"]
        for k in _VECTORS:
            setattr(opt, k, np.array(state[k], dtype=np.float64))
        for k in _MATRICES:
            setattr(cov, k, np.array(state[k], dtype=np.float64))
        cov.condition_number, cov.updated_eval = state["condition_number"], state["updated_eval"]
