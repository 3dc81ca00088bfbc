"""mergekit's own merge methods as crossover operators, by their mergekit names.

Every method in mergekit's registry that the ``merge`` plugin does not
already offer under the same name (``della``, ``della_linear``,
``model_stock``, ``nuslerp``, ``multislerp``, ``karcher``, ``sce``,
``nearswap``, ``arcee_fusion``, ``ram``, ``ramplus_tl``,
``breadcrumbs_ties``) runs through mergekit's per-tensor implementation: a
:class:`mergekit.merge_methods.base.TensorGroup` of one tensor's inputs,
called with the method's parameters. ``passthrough`` is left out: it takes
one input, so it merges nothing.

Inputs, from the method's input contract:

- base ignored (``karcher``): the parents;
- base required or optional, room for one more input than the parents: the
  run's base model as mergekit's ``base_model``, then the parents (task
  vectors against the base, as in mergekit);
- base required, room for the parents only (``nearswap``, ``arcee_fusion``):
  the first parent is the base.

Parameters are drawn once per child and kept whole in its recipe (so a later
mergekit default cannot change a rebuild): the merge weights
(``N(1, crossover_std)`` per weighted input), ``density`` =
``merge.merge_density``, ``t`` = :data:`NEARSWAP_T` for ``nearswap``, and
every other parameter at mergekit's default. Random methods (``della``) draw
from torch's global generator, which materialisation seeds per tensor from
the recipe, so rebuilds are bitwise identical.
"""

from __future__ import annotations

import numpy as np
import torch
from mergekit.merge_methods import registry
from mergekit.merge_methods.base import BasePolicy, ParameterScope, TensorGroup

from acdc_engine.api import MergeMethod

#: Methods of the ``merge`` plugin with mergekit's names (its own implementations, on mergekit's parts).
OFFERED_BY_MERGE = frozenset({"linear", "task_arithmetic", "slerp", "ties", "dare_ties", "dare_linear",
                              "breadcrumbs"})
#: nearswap's distance threshold (no mergekit default; the value of mergekit's own example).
NEARSWAP_T = 1e-4
PARENTS = 2


def _inputs(method, n_parents: int) -> tuple[bool, bool]:
    """(whether the run's base is an input, whether some input is mergekit's base)."""
    contract = method.spec.contract
    if contract.base == BasePolicy.IGNORED:
        return False, False
    fits = contract.max_inputs is None or contract.max_inputs >= n_parents + 1
    if contract.base == BasePolicy.OPTIONAL:
        return fits, fits
    return fits, True  # required: the run's base, or else the first parent


def _drawer(method):
    def draw(n_parents: int, rng: np.random.Generator, config) -> dict:
        with_base, has_base = _inputs(method, n_parents)
        n_inputs = n_parents + int(with_base)
        params = {}
        for spec in method.spec.parameters:
            if spec.name == "weight":  # one per weighted input
                count = n_inputs - int(has_base) if spec.scope == ParameterScope.NON_BASE else n_inputs
                params["weight"] = [float(w) for w in rng.normal(1.0, config.merge.crossover_std, size=count)]
            elif spec.name == "density":
                params["density"] = config.merge.merge_density
            elif spec.name == "t" and method.spec.name == "nearswap":
                params["t"] = NEARSWAP_T
            elif not spec.required:
                params[spec.name] = spec.default
        return params
    return draw


def _merger(method):
    def merge(name, parents, base, params, out=None):
        with_base, has_base = _inputs(method, len(parents))
        tensors = ([base] if with_base else []) + [parents[i] for i in range(len(parents))]
        group = TensorGroup.from_tensors(tensors, base_index=0 if has_base else None, name=name)
        (merged,) = method([group], parameters=params, out_dtype=torch.float32)
        return merged
    return merge


def mergekit_merge_methods() -> dict[str, MergeMethod]:
    """Every mergekit method the ``merge`` plugin lacks, by name."""
    out = {}
    for method in registry.registered_methods():
        name = method.spec.name
        if name in OFFERED_BY_MERGE or (method.spec.contract.max_inputs or PARENTS) < PARENTS:
            continue
        out[name] = MergeMethod(name, _merger(method), _drawer(method), n_parents=PARENTS)
    return out
