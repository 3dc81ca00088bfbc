"""Every merge method offered under a mergekit name: each child equals mergekit's ``run_merge`` on the same inputs
and parameters, and its recipe records every parameter of the method."""

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
from acdc_engine.models.materialise import materialise
from acdc_engine.plugins.merge.merge_plugin import acdc_merge_methods
from acdc_engine.plugins.merge.mergekit_methods import OFFERED_BY_MERGE, _inputs, mergekit_merge_methods, mergekit_params
from acdc_engine.recipe import Recipe
from conftest import make_tiny_model

MERGEKIT_NAMES = {m.spec.name for m in registry.registered_methods()}
METHODS = sorted(set(acdc_merge_methods()) & MERGEKIT_NAMES)  # every method offered under a mergekit name
RANDOM = {"della", "della_linear", "dare_ties", "dare_linear"}  # random drops: compared at density 1 (none dropped)
#: Parameters away from mergekit's defaults, each compared too: the recipe's value is the one that counts.
NON_DEFAULT = [("linear", {"normalize": False}), ("ties", {"normalize": False}), ("dare_linear", {"normalize": True}),
               ("breadcrumbs", {"normalize": True, "gamma": 0.05}), ("task_arithmetic", {"lambda": 0.7}),
               ("dare_ties", {"normalize": True, "rescale": False})]
SAMPLED = {"arcee_fusion": 1_000_000}  # quantiles from a random sample of a tensor above this many entries


@pytest.fixture(scope="module")
def three(tiny_models, smollm2_dir, tmp_path_factory):
    """The run's base and two parents of one architecture."""
    c = make_tiny_model(tmp_path_factory.mktemp("tiny_c") / "c", smollm2_dir, seed=3)
    return tiny_models["a"], tiny_models["b"], c


def test_every_mergekit_method_is_offered_by_name_but_passthrough():
    offered = set(acdc_merge_methods())
    assert MERGEKIT_NAMES - offered == {"passthrough"}  # one input: it merges nothing
    assert set(mergekit_merge_methods()) == MERGEKIT_NAMES - set(OFFERED_BY_MERGE) - {"passthrough"}
    assert len(METHODS) == len(MERGEKIT_NAMES) - 1 >= 19


@pytest.mark.parametrize("name", METHODS)
def test_recipes_record_every_parameter_of_the_method(name):
    params = acdc_merge_methods()[name].draw_params(2, np.random.default_rng(0), load_config())
    assert set(mergekit_params(name, params)) == {p.name for p in registry.get(name).spec.parameters}
    if "normalize" in params:  # mergekit's default, written down
        spec = next(p for p in registry.get(name).spec.parameters if p.name == "normalize")
        assert params["normalize"] is spec.default


def test_a_recipe_from_before_normalize_was_recorded_rebuilds_as_it_was_made():
    merge = acdc_merge_methods()["dare_linear"].merge
    base, p, q = torch.zeros(6), torch.arange(6.0), -torch.arange(6.0) * 3
    old = merge("w", [p, q], base, {"weights": [1.0, 3.0], "density": 1.0})  # made when it always normalised
    now = merge("w", [p, q], base, {"weights": [1.0, 3.0], "density": 1.0, "normalize": False})
    torch.testing.assert_close(old, (p + 3 * q) / 4)
    torch.testing.assert_close(now, p + 3 * q)


def mergekit_config(method_name: str, params: dict, base, parents) -> dict:
    """The mergekit YAML config that asks for the same child."""
    method = registry.get(method_name)
    params = mergekit_params(method_name, params)
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


@pytest.mark.parametrize(("name", "changed"), [(m, {}) for m in METHODS] + NON_DEFAULT,
                         ids=[*METHODS, *(f"{m}-{'-'.join(c)}" for m, c in NON_DEFAULT)])
def test_each_method_equals_mergekit_run_merge(three, tmp_path, name, changed):
    base, *parents = three
    method = acdc_merge_methods()[name]
    params = method.draw_params(2, np.random.default_rng(0), load_config()) | changed
    if name in RANDOM:
        params.update(density=1.0, **({"epsilon": 0.0} if "epsilon" in params else {}))
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
    diff = 0.0
    for key, tensor in theirs.items():
        if tensor.numel() > SAMPLED.get(name, tensor.numel()):
            continue  # seeded per tensor here, once per merge by run_merge
        torch.testing.assert_close(child[key], tensor, rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
        diff = max(diff, (child[key] - tensor).abs().max().item())
    print(f"parity {name} {changed or ''}: max abs diff {diff:.1e}")
    first = load_file(parents[0] / "model.safetensors")
    assert any(not torch.equal(child[k], first[k]) for k in child)  # it merged something



def slices_config(method_name: str, params: dict, per_block: list, base, parents, granularity: int) -> dict:
    """mergekit-evolve's merge config for weights per block of layers (its ``_discrete_config_slices``)."""
    flat = mergekit_config(method_name, params | {"weight": per_block[0]}, base, parents)
    paths = [str(p) for p in parents]
    slices = []
    for b, weights in enumerate(per_block):
        sources = []
        for entry in flat["models"]:
            source = {"model": entry["model"], "layer_range": [b * granularity, (b + 1) * granularity]}
            if entry["model"] in paths:
                source["parameters"] = entry["parameters"] | {"weight": weights[paths.index(entry["model"])]}
            sources.append(source)
        slices.append({"sources": sources})
    return {k: v for k, v in flat.items() if k != "models"} | {"slices": slices}


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    """Three 2-layer llamas with an lm_head of their own and random norms: every tensor outside the layers
    tells which block's weights it took."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    out = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        for name, tensor in model.named_parameters():
            if "norm" in name:
                tensor.data.uniform_(0.5, 1.5)
        path = tmp_path_factory.mktemp(f"untied{seed}")
        model.save_pretrained(path)
        out.append(path)
    return out


@pytest.mark.parametrize("name", ["linear", "ties", "task_arithmetic", "breadcrumbs_ties"])
def test_weights_per_block_of_layers_equal_mergekit_evolve_slices(untied, tmp_path, name):
    """The CMA-ES emitter's per-block weights (layer_granularity 1 on 2 layers) give run_merge's child of the
    slices config mergekit-evolve writes for them: embeddings from the first block, the final norm from the last."""
    base, *parents = untied
    method = acdc_merge_methods()[name]
    params = method.draw_params(2, np.random.default_rng(0), load_config())
    key = "weights" if "weights" in params else "weight"
    per_block = [[1.3, 0.4], [0.2, 1.1]]
    files = dict(parent_files=[p / "model.safetensors" for p in parents], base_file=base / "model.safetensors",
                 merge=method, mutation=None)
    recipe = Recipe.make(parents=("p", "q"), crossover=name, seed=5,
                         crossover_params=params | {key: per_block, "layer_granularity": 1})
    materialise(recipe, out_file=tmp_path / "ours.safetensors", **files)
    config = slices_config(name, params, per_block, base, parents, granularity=1)
    run_merge(MergeConfiguration.model_validate(config), str(tmp_path / "mk"),
              options=MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True, random_seed=0))
    theirs = {}
    for shard in (tmp_path / "mk").glob("*.safetensors"):
        theirs.update(load_file(shard))
    child = load_file(tmp_path / "ours.safetensors")
    assert set(theirs) == set(child)
    for k, tensor in theirs.items():
        torch.testing.assert_close(child[k], tensor, rtol=1e-5, atol=1e-6, msg=f"{name}: {k}")
    print(f"parity per block {name}: max abs diff {max((child[k] - t).abs().max().item() for k, t in theirs.items()):.1e}")
    flat = Recipe.make(parents=("p", "q"), crossover=name, seed=5, crossover_params=params | {key: per_block[0]})
    materialise(flat, out_file=tmp_path / "flat.safetensors", **files)
    first = load_file(tmp_path / "flat.safetensors")  # the whole model at the first block's weights
    second = {k for k in child if ".layers.1." in k or k in ("model.norm.weight", "lm_head.weight")}
    assert "model.embed_tokens.weight" in set(child) - second and len(second) == 11
    assert all(torch.equal(child[k], first[k]) for k in set(child) - second)
    assert not any(torch.equal(child[k], first[k]) for k in second)  # the last block has weights of its own
