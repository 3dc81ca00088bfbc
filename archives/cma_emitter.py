"""A CMA-ES emitter: pyribs' CMA-ES over the merge weights of one parent group, per block of layers.

The ES searches the continuous part of a recipe: the merge weights, one per
parent (per weighted input for mergekit's methods) for each block of
``cma_layer_granularity`` consecutive layers, as mergekit-evolve's
``layer_granularity`` does (0: one weight per parent for the whole model).
With more than one block the child's recipe holds the weights per block and
``layer_granularity``, which materialisation resolves for each tensor
(:mod:`acdc_engine.models.layer_blocks`: embeddings take the first block's weights,
the final norm and ``lm_head`` the last's, as in mergekit's slices); with one
block it holds plain weights. Parents: a group of ``n_parents`` archive
members (distinct where the archive has enough), drawn uniformly at the first
ask and at every ES restart, and kept until then. The ES starts at equal
weights (1 per parent and block) with step ``cma_sigma0`` within
``cma_weight_bounds``; each child's recipe holds its ES sample, so the recipe
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

Resuming: :meth:`state` is the ES's whole state as plain numbers in a format
of this module's own (:data:`STATE_FORMAT`; CMA-ES's textbook quantities: mean,
step size, evolution paths, covariance and its last eigendecomposition, the
evaluation count), which the run store keeps in each generation's commit;
:meth:`load_state` rebuilds the ES from them. The random draws come from
:meth:`reseed`, called each generation, so no generator state is kept. The
numbers are put into pyribs' ``CMAEvolutionStrategy`` through its attributes,
checked by name: a pyribs whose optimiser lacks one is refused in one line
(and ``tests/test_cma_emitter.py`` fails on a pyribs other than
:data:`TESTED_RIBS`), never silently misread.
"""

from __future__ import annotations

import numpy as np
import ribs
from ribs.emitters import EmitterBase
from ribs.emitters.opt import CMAEvolutionStrategy
from ribs.emitters.rankers import TwoStageImprovementRanker, TwoStageObjectiveRanker

from acdc_engine.errors import AcdcError
from acdc_engine.models.layer_blocks import KEY as GRANULARITY_KEY
from acdc_engine.models.layer_blocks import n_blocks
from acdc_engine.models.operators import MergeMethod, MutationMethod
from acdc_engine.recipe import Recipe

#: The crossover parameters that hold merge weights: the merge plugin's, and mergekit's.
WEIGHT_KEYS = ("weights", "weight")
#: The version of :meth:`CMAEmitter.state`'s format.
STATE_FORMAT = 2
#: The pyribs release whose ``CMAEvolutionStrategy`` the state is put back into (tests check it).
TESTED_RIBS = "0.12.0"
#: Saved name -> (pyribs object, its attribute, kind): the optimiser's ("opt") or its covariance's ("cov").
_FIELDS = {
    "mean": ("opt", "mean", "vector"), "sigma": ("opt", "sigma", "float"),
    "evaluations": ("opt", "current_eval", "int"),
    "path_sigma": ("opt", "ps", "vector"), "path_c": ("opt", "pc", "vector"),
    "cov": ("cov", "cov", "matrix"), "eigenbasis": ("cov", "eigenbasis", "matrix"),
    "eigenvalues": ("cov", "eigenvalues", "vector"), "invsqrt": ("cov", "invsqrt", "matrix"),
    "condition_number": ("cov", "condition_number", "float"), "decomposed_at": ("cov", "updated_eval", "int"),
}
#: State format 1 (no "format" key) named the numbers by pyribs' attributes.
_FORMAT1 = {"current_eval": "evaluations", "ps": "path_sigma", "pc": "path_c", "updated_eval": "decomposed_at"}


class CMAEmitter(EmitterBase):
    """Asks for ``batch_size`` recipes per generation from a CMA-ES over merge weights per block of
    layers (see the module); ``num_layers`` is the models' layer count."""

    def __init__(
        self,
        archive,
        *,
        batch_size: int,
        merge: MergeMethod,
        mutation: MutationMethod | None,
        config,
        num_layers: int,
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
        self.granularity = self._evo.cma_layer_granularity
        self.blocks = n_blocks(num_layers, self.granularity)
        self.per_block = len(template[self._key])  # weights per block
        self.dim = self.blocks * self.per_block
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
        """The ES's current mean: the merge weights it centres on (blocks one after another)."""
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

    def weights(self, sample: np.ndarray) -> dict:
        """The crossover parameters that hold one ES sample: plain weights, or weights per block."""
        if self.blocks == 1:
            return {self._key: [float(w) for w in sample]}
        rows = np.asarray(sample, dtype=float).reshape(self.blocks, self.per_block)
        return {self._key: [[float(w) for w in row] for row in rows], GRANULARITY_KEY: self.granularity}

    def ask(self) -> np.ndarray:
        """``batch_size`` recipes of the parent group, their merge weights sampled by the ES."""
        if not self.parents or not set(self.parents) <= set(self.archive.member_ids()):
            self._restart()
        samples = self._opt.ask(self.batch_size)
        recipes = np.empty(self.batch_size, dtype=object)
        for i, sample in enumerate(samples):
            params = self._merge.draw_params(len(self.parents), self._rng, self._config) | self.weights(sample)
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

    def _target(self, obj: str, attr: str, name: str):
        """The pyribs object that holds the state's ``name`` (as attribute ``attr``); one line where it has none."""
        target = self._opt if obj == "opt" else getattr(self._opt, "cov", None)
        if target is None or not hasattr(target, attr):
            raise AcdcError(f"pyribs {ribs.__version__}'s CMAEvolutionStrategy has no {attr!r}, which holds the CMA-ES "
                            f"state's {name!r} in pyribs {TESTED_RIBS}: install ribs=={TESTED_RIBS} to run or resume "
                            "with evolution.emitter = 'cma-es'")
        return target

    def state(self) -> dict:
        """Everything that carries over between generations, as plain JSON-able numbers (floats round-trip
        exactly) in format :data:`STATE_FORMAT` (see the module)."""
        es = {}
        for name, (obj, attr, kind) in _FIELDS.items():
            value = getattr(self._target(obj, attr, name), attr)
            es[name] = float(value) if kind == "float" else int(value) if kind == "int" else \
                np.asarray(value, dtype=np.float64).tolist()
        return {"format": STATE_FORMAT, "ribs": ribs.__version__, "parents": list(self.parents),
                "restarts": self.restarts, "itrs": self.itrs, "blocks": self.blocks, "granularity": self.granularity,
                "es": es}

    def load_state(self, state: dict) -> None:
        """Rebuilds the ES from a :meth:`state` (or one of format 1, written before the format was versioned)."""
        if "format" not in state:  # format 1: the numbers at the top level under pyribs' names
            state = {**state, "es": {_FORMAT1.get(k, k): v for k, v in state.items() if _FORMAT1.get(k, k) in _FIELDS},
                     "blocks": 1, "granularity": 0}
        elif state["format"] != STATE_FORMAT:
            raise AcdcError(f"CMA-ES state format {state['format']} is not the one this version reads "
                            f"({STATE_FORMAT})")
        es = state["es"]
        if len(es["mean"]) != self.dim:
            raise AcdcError(f"the saved CMA-ES searches {len(es['mean'])} merge weights ({state['blocks']} layer "
                            f"blocks), this config {self.dim} ({self.blocks} blocks of evolution.cma_layer_granularity "
                            f"= {self.granularity}): resume with the setting the state was made with (evolution."
                            f"cma_layer_granularity = {state['granularity']})")
        self._opt.reset(np.ones(self.dim))
        for name, (obj, attr, kind) in _FIELDS.items():
            value = es[name]
            setattr(self._target(obj, attr, name), attr,
                    np.array(value, dtype=np.float64) if kind in ("vector", "matrix") else value)
        self.parents, self.restarts, self.itrs = tuple(state["parents"]), state["restarts"], state["itrs"]
