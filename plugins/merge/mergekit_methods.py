"""mergekit's own merge methods as crossover operators, by their mergekit names.

Every method offered under a mergekit name runs mergekit's per-tensor code:
a :class:`mergekit.merge_methods.base.TensorGroup` of one tensor's inputs,
called with the method's parameters. The one exception is ``linear`` with
two parents and ``normalize`` on (the AC/DC default), merged by one fused
``torch.lerp`` (in place into a resident model's tensor): the same weighted
average, equal to mergekit's within float rounding (``tests/test_mergekit_methods.py``
holds it to ``run_merge``). ``passthrough`` is left out: it takes one input,
so it merges nothing.

Inputs, from the method's input contract:

- base ignored (``linear``, ``karcher``): the parents;
- base required or optional, room for one more input than the parents: the
  run's base model as mergekit's ``base_model``, then the parents (task
  vectors against the base, as in mergekit);
- base required, room for the parents only (``slerp``, ``nearswap``,
  ``arcee_fusion``): the first parent is the base (``slerp``'s ``t`` runs
  from the first parent to the second).

Parameters are drawn once per child and kept whole in its recipe (so a later
mergekit default cannot change a rebuild): every parameter of the method's
mergekit spec, at mergekit's default (``normalize`` included: true for
``linear``, ``ties``, ``della``; false for ``task_arithmetic``, ``dare_ties``,
``dare_linear``, ``breadcrumbs``), except the merge weights
(``N(1, crossover_std)`` per weighted input), ``density`` =
``merge.merge_density`` for the sparsifying methods, ``t ~ U(0.25, 0.75)``
for ``slerp`` and ``t`` = :data:`NEARSWAP_T` for ``nearswap``. The merge
plugin's seven methods keep their weights under ``weights`` (the key of its
earlier recipes), mergekit's others under ``weight``.

A recipe made before a parameter was recorded rebuilds as it was made:
``dare_ties``, ``dare_linear`` and ``breadcrumbs`` recipes without
``normalize`` were normalised by the weights' sum (:data:`LEGACY`), and a
``task_arithmetic`` recipe without it is summed as it was then (equal to
mergekit's within float rounding). ``slerp`` recipes made before it ran
mergekit's code interpolated row by row: they no longer rebuild (a rebuild
that hashes differently is refused). The merge
plugin's methods compute in float32 (mergekit's ``dtype: float32``), the
others in the checkpoint's dtype (mergekit's default). Random methods
(``dare_*``, ``della*``) draw from torch's global generator, which
materialisation seeds per tensor from the recipe, so rebuilds are bitwise
identical.
"""

from __future__ import annotations

import numpy as np
import torch
from mergekit.merge_methods import registry
from mergekit.merge_methods.base import BasePolicy, ParameterScope, TensorGroup

from acdc_engine.api import AcdcError, MergeMethod

#: Methods of the ``merge`` plugin with mergekit's names (mergekit's code; weights under ``weights``).
OFFERED_BY_MERGE = ("linear", "task_arithmetic", "slerp", "ties", "dare_ties", "dare_linear", "breadcrumbs")
#: Parameters missing from recipes made before they were recorded: the value those rebuilds used.
LEGACY = {"dare_ties": {"normalize": True}, "dare_linear": {"normalize": True}, "breadcrumbs": {"normalize": True}}
#: nearswap's distance threshold (no mergekit default; the value of mergekit's own example).
NEARSWAP_T = 1e-4
#: slerp's interpolation factor is drawn uniformly from this range.
SLERP_T = (0.25, 0.75)
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


def _sparsifies(method) -> bool:
    """Whether ``density`` changes the method's result (task_arithmetic has the parameter but no sparsification)."""
    return getattr(method, "sparsification_method", True) is not None


def _drawer(method, weight_key: str):
    name = method.spec.name

    def draw(n_parents: int, rng: np.random.Generator, config) -> dict:
        with_base, has_base = _inputs(method, n_parents)
        n_inputs = n_parents + int(with_base)
        params = {}
        for spec in method.spec.parameters:
            if spec.name == "weight":  # one per weighted input
                count = n_inputs - int(has_base) if spec.scope == ParameterScope.NON_BASE else n_inputs
                params[weight_key] = [float(w) for w in rng.normal(1.0, config.merge.crossover_std, size=count)]
            elif spec.name == "density" and _sparsifies(method):
                params["density"] = config.merge.merge_density
            elif spec.name == "t" and name == "slerp":
                params["t"] = float(rng.uniform(*SLERP_T))
            elif spec.name == "t" and name == "nearswap":
                params["t"] = NEARSWAP_T
            elif not spec.required:
                params[spec.name] = spec.default
        return params
    return draw


def mergekit_params(name: str, params: dict) -> dict:
    """A recipe's crossover parameters as mergekit's method ``name`` takes them (``weights`` as ``weight``,
    a parameter missing from an older recipe at the value its rebuild used then)."""
    out = {**LEGACY.get(name, {}), **params}
    if "weights" in out:
        out["weight"] = out.pop("weights")
    return out


def run_mergekit(method, name: str, parents, base, params: dict, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One tensor ``name`` merged by mergekit's ``method`` from the parents (and the base where it takes one)."""
    with_base, has_base = _inputs(method, len(parents))
    tensors = ([base] if with_base else []) + [parents[i] for i in range(len(parents))]
    group = TensorGroup.from_tensors(tensors, base_index=0 if has_base else None, name=name)
    try:
        (merged,) = method([group], parameters=mergekit_params(method.spec.name, params), dtype=dtype,
                           out_dtype=torch.float32)
    except (TypeError, ValueError) as e:  # mergekit's checks of the parameters
        raise AcdcError(f"crossover {method.spec.name!r} on tensor {name}: {e}") from None
    return merged


def _merger(method, dtype: torch.dtype | None):
    def merge(name, parents, base, params, out=None):
        if method.spec.name == "task_arithmetic" and "normalize" not in params:
            return _task_arithmetic_before(parents, base, params)
        return run_mergekit(method, name, parents, base, params, dtype)
    return merge


def _task_arithmetic_before(parents, base, params) -> torch.Tensor:
    """``task_arithmetic`` as recipes made before its parameters were recorded were built (the same sum,
    accumulated in another order, so their rebuilds stay bitwise the same)."""
    acc = torch.zeros(base.shape, dtype=torch.float32)
    for w, i in zip(params["weights"], range(len(parents))):
        acc.add_(parents[i].to(torch.float32) - base, alpha=w)
    return base.to(torch.float32) + params.get("lambda", 1.0) * acc


def linear_merge(name, parents, base, params, out=None):
    """mergekit's ``linear``; two parents with ``normalize`` on: one fused ``lerp`` (into ``out`` where it fits)."""
    weights = params.get("weights", params.get("weight"))
    if len(weights) != 2 or not params.get("normalize", True) or parents[0].ndim == 0:
        return run_mergekit(registry.get("linear"), name, parents, base, params, torch.float32)
    a, b = parents[0], parents[1]
    t = weights[1] / float(sum(weights))
    if out is None or out.dtype != a.dtype:
        return torch.lerp(a, b, t)
    return torch.lerp(a, b, t, out=out)


def merge_plugin_methods() -> dict[str, MergeMethod]:
    """The merge plugin's methods by their mergekit names: mergekit's code in float32, weights under ``weights``."""
    out = {}
    for name in OFFERED_BY_MERGE:
        method = registry.get(name)
        fn = linear_merge if name == "linear" else _merger(method, torch.float32)
        out[name] = MergeMethod(name, fn, _drawer(method, "weights"), n_parents=PARENTS)
    return out


def mergekit_merge_methods() -> dict[str, MergeMethod]:
    """Every mergekit method the ``merge`` plugin lacks, by name."""
    out = {}
    for method in registry.registered_methods():
        name = method.spec.name
        if name in OFFERED_BY_MERGE or (method.spec.contract.max_inputs or PARENTS) < PARENTS:
            continue
        out[name] = MergeMethod(name, _merger(method, None), _drawer(method, "weight"), n_parents=PARENTS)
    return out
