"""mergekit's own methods as crossover operators: each child equals mergekit's ``run_merge`` on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.merge_methods import registry
from mergekit.merge_methods.base import ParameterScope
from mergekit.options import MergeOptions
from safetensors.torch import load_file

from acdc_engine.config import load_config
from acdc_engine.materialise import materialise
from acdc_engine.plugins.merge import acdc_merge_methods
from acdc_engine.plugins.mergekit_methods import OFFERED_BY_MERGE, _inputs, mergekit_merge_methods
from acdc_engine.recipe import Recipe
from conftest import make_tiny_model

METHODS = sorted(mergekit_merge_methods())
RANDOM = {"della", "della_linear"}  # random drops: compared at density 1 (nothing dropped)
SAMPLED = {"arcee_fusion": 1_000_000}  # quantiles from a random sample of a tensor above this many entries


@pytest.fixture(scope="module")
def three(tiny_models, smollm2_dir, tmp_path_factory):
    """The run's base and two parents of one architecture."""
    c = make_tiny_model(tmp_path_factory.mktemp("tiny_c") / "c", smollm2_dir, seed=3)
    return tiny_models["a"], tiny_models["b"], c


def test_every_mergekit_method_is_offered_by_name_but_passthrough():
    names = {m.spec.name for m in registry.registered_methods()}
    offered = set(acdc_merge_methods())
    assert names - offered == {"passthrough"}  # one input: it merges nothing
    assert set(METHODS) == names - OFFERED_BY_MERGE - {"passthrough"} and len(METHODS) >= 12


def mergekit_config(method_name: str, params: dict, base, parents) -> dict:
    """The mergekit YAML config that asks for the same child."""
    method = registry.get(method_name)
    with_base, has_base = _inputs(method, len(parents))
    inputs = ([base] if with_base else []) + list(parents)
    base_model = inputs[0] if has_base else None
    weighted = inputs[1:] if has_base else inputs
    per_input = {s.name for s in method.spec.parameters if s.scope != ParameterScope.SHARED}
    models = []
    for i, path in enumerate(weighted):
        own = {k: (v[i] if isinstance(v, list) else v) for k, v in params.items() if k in per_input}
        models.append({"model": str(path), "parameters": own})
    if base_model is not None:
        models.insert(0, {"model": str(base_model)})
    config = {"merge_method": method_name, "models": models, "dtype": "float32", "out_dtype": "float32",
              "parameters": {k: v for k, v in params.items() if k not in per_input}}
    if base_model is not None:
        config["base_model"] = str(base_model)
    return config


@pytest.mark.parametrize("name", METHODS)
def test_each_method_equals_mergekit_run_merge(three, tmp_path, name):
    base, *parents = three
    method = mergekit_merge_methods()[name]
    params = method.draw_params(2, np.random.default_rng(0), load_config())
    if name in RANDOM:
        params.update(density=1.0, epsilon=0.0)
    recipe = Recipe.make(parents=("p", "q"), crossover=name, crossover_params=params, seed=5)
    ours = tmp_path / "ours.safetensors"
    materialise(recipe, parent_files=[p / "model.safetensors" for p in parents],
                base_file=base / "model.safetensors", merge=method, mutation=None, out_file=ours)
    again = tmp_path / "again.safetensors"
    materialise(recipe, parent_files=[p / "model.safetensors" for p in parents],
                base_file=base / "model.safetensors", merge=method, mutation=None, out_file=again)
    assert ours.read_bytes() == again.read_bytes()  # a rebuild is bitwise the same

    config = mergekit_config(name, params, base, parents)
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(config))
    run_merge(MergeConfiguration.model_validate(config), str(tmp_path / "mk"),
              options=MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True, random_seed=0))
    theirs = {}
    for shard in (tmp_path / "mk").glob("*.safetensors"):
        theirs.update(load_file(shard))
    child = load_file(ours)
    assert set(theirs) <= set(child) and theirs
    for key, tensor in theirs.items():
        if tensor.numel() > SAMPLED.get(name, tensor.numel()):
            continue  # seeded per tensor here, once per merge by run_merge
        torch.testing.assert_close(child[key], tensor, rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
    first = load_file(parents[0] / "model.safetensors")
    assert any(not torch.equal(child[k], first[k]) for k in child)  # it merged something
