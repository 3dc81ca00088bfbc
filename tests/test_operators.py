"""Model operators and materialisation, on hand-computed cases and tiny models."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError
from acdc_engine.models.materialise import materialise
from acdc_engine.plugins.merge.merge_plugin import (
    acdc_merge_methods,
    acdc_mutation_methods,
    svd_noise_mutation,
    top_singular,
)
from acdc_engine.recipe import Recipe

MERGE = acdc_merge_methods()["linear"]
SVD = acdc_mutation_methods()["svd"]


def test_linear_merge_matches_hand_computation():
    base = torch.tensor([1.0, 1.0])
    p1, p2 = torch.tensor([3.0, 1.0]), torch.tensor([1.0, 5.0])
    # tau1 = (2, 0), tau2 = (0, 4); weights 1 and 3 -> (2*1 + 0*3)/4, (0*1 + 4*3)/4 = (0.5, 3)
    out = MERGE.merge("w", [p1, p2], base, {"weights": [1.0, 3.0]})
    assert torch.allclose(out, torch.tensor([1.5, 4.0]))
    three = MERGE.merge("w", [p1, p2, base], base, {"weights": [1.0, 3.0, 4.0], "normalize": True})
    assert torch.allclose(three, torch.tensor([1.25, 2.5]))  # (3 + 3 + 4) / 8, (1 + 15 + 4) / 8: mergekit's linear past two parents


def test_merge_weights_are_drawn_around_one():
    params = MERGE.draw_params(2, np.random.default_rng(0), load_config(None, ["merge.crossover_std=0.01"]))
    assert len(params["weights"]) == 2 and all(abs(w - 1) < 0.1 for w in params["weights"])


@pytest.mark.parametrize("shape", [(40, 24), (24, 40)])
@pytest.mark.parametrize("dtype, k, rtol", [(torch.float64, 10, 1e-10), (torch.float32, 10, 1e-5),
                                            (torch.float32, 20, 1e-10)])
def test_gram_eigendecomposition_gives_the_top_singular_values(shape, dtype, k, rtol):
    """Float32 for the upper half of the spectrum; float64 (exact) beyond it."""
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    s, _, _ = top_singular(w, k)
    exact = torch.linalg.svdvals(w.double())[:k]
    assert torch.allclose(s.double(), exact, rtol=rtol, atol=0)


@pytest.mark.parametrize("top, precision", [(0.3, torch.float32), (3.0, torch.float64)])
def test_a_widely_spread_kept_spectrum_is_decomposed_in_float64(top, precision):
    """float32 eigh loses accuracy as the kept eigenvalues spread (SmolLM2's embedding: 9e-5)."""
    gen = torch.Generator().manual_seed(5)
    u, _ = torch.linalg.qr(torch.randn(96, 48, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(48, 48, generator=gen, dtype=torch.float64))
    w = ((u * torch.logspace(top, 0, 48, dtype=torch.float64)) @ v.T).float()
    s, vecs, _ = top_singular(w, 24)
    exact = torch.linalg.svdvals(w.double())[:24]
    assert vecs.dtype == precision
    assert float(((s.double() - exact).abs() / exact).max()) < 1e-5


@pytest.mark.parametrize("shape", [(40, 24), (24, 40)])
def test_svd_mutation_moves_only_the_top_singular_values(shape):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = svd_noise_mutation("w", w.clone(), {"std": 0.5, "keep_rank": 5}, torch.Generator().manual_seed(2))
    before, after = torch.linalg.svdvals(w), torch.linalg.svdvals(out)
    noise = torch.randn(5, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.5
    assert torch.allclose(torch.sort(after, descending=True).values,
                          torch.sort(torch.cat([(before[:5] + noise).clamp_min(0), before[5:]]), descending=True).values,
                          atol=1e-9)
    # singular vectors are kept: the change lies in the top-5 subspace
    u, _, vt = torch.linalg.svd(w)
    delta = out - w
    assert torch.allclose(u[:, 5:].T @ delta @ vt[5:].T, torch.zeros(1, dtype=w.dtype), atol=1e-9)


def test_relative_svd_mutation_scales_each_value_by_itself():
    w = torch.randn(40, 24, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = svd_noise_mutation("w", w.clone(), {"std": 0.1, "keep_rank": 5, "relative": True},
                             torch.Generator().manual_seed(2))
    before, after = torch.linalg.svdvals(w), torch.linalg.svdvals(out)
    noise = torch.randn(5, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.1
    want = torch.cat([before[:5] * (1 + noise), before[5:]])
    assert torch.allclose(torch.sort(after, descending=True).values, torch.sort(want, descending=True).values,
                          atol=1e-9)


def test_relative_noise_changes_a_tiny_model_by_about_std_of_its_norm(tiny_models):
    """The calibration: with relative noise each matrix moves by about std times the norm of its top-k
    part, whatever its scale; absolute noise moves small matrices by far more than large ones."""
    from safetensors.torch import load_file

    weights = load_file(tiny_models["a"] / "model.safetensors")
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"):
        for scale in (1.0, 100.0):
            w = weights[name].double() * scale
            k = min(16, *w.shape)
            top = torch.linalg.svdvals(w)[:k].norm()
            out = svd_noise_mutation(name, w.clone(), {"std": 0.05, "keep_rank": k, "relative": True},
                                     torch.Generator().manual_seed(3))
            assert 0.02 < float((out - w).norm() / top) < 0.09
    w = weights["model.layers.0.self_attn.q_proj.weight"].double()
    small = svd_noise_mutation("q", w.clone(), {"std": 0.05, "keep_rank": 16}, torch.Generator().manual_seed(3))
    big = svd_noise_mutation("q", 100 * w, {"std": 0.05, "keep_rank": 16}, torch.Generator().manual_seed(3))
    assert float((small - w).norm() / w.norm()) > 50 * float((big - 100 * w).norm() / (100 * w).norm())


def test_keep_rank_above_the_rank_is_clamped():
    w = torch.randn(6, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out = svd_noise_mutation("k_proj.weight", w.clone(), {"std": 0.1, "keep_rank": 256}, torch.Generator().manual_seed(4))
    assert out.shape == w.shape and not torch.equal(out, w)


def test_norms_and_vectors_are_not_mutated():
    assert SVD.applies_to("model.layers.0.mlp.up_proj.weight", torch.zeros(4, 4))
    assert SVD.applies_to("model.embed_tokens.weight", torch.zeros(4, 4))
    assert not SVD.applies_to("model.layers.0.input_layernorm.weight", torch.zeros(4))
    assert not SVD.applies_to("model.norm.weight", torch.zeros(4, 4))


def child(tiny_models, out: Path, seed=7):
    recipe = Recipe.make(parents=("a", "b"), crossover="linear", crossover_params={"weights": [1.0, 1.1]},
                         mutation="svd", mutation_params={"std": 0.25, "keep_rank": 16}, seed=seed)
    materialise(recipe, parent_files=[tiny_models[k] / "model.safetensors" for k in "ab"],
                base_file=tiny_models["a"] / "model.safetensors", merge=MERGE, mutation=SVD, out_file=out)
    return load_file(out)


def test_same_recipe_gives_bitwise_identical_weights(tiny_models, tmp_path):
    one, two = child(tiny_models, tmp_path / "1.safetensors"), child(tiny_models, tmp_path / "2.safetensors")
    other = child(tiny_models, tmp_path / "3.safetensors", seed=8)
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
    assert not torch.equal(one["model.embed_tokens.weight"], other["model.embed_tokens.weight"])
    # the tied embedding is one tensor in the checkpoint, so it is mutated exactly once
    assert "lm_head.weight" not in one


def test_a_failing_mutation_leaves_no_file_and_the_thread_count_as_it_was(tiny_models, tmp_path):
    """Tensors are mutated on worker threads: an error there aborts the child cleanly."""
    from acdc_engine.models.operators import MutationMethod

    def explode(name, tensor, params, generator):
        if "layers.1" in name:
            raise RuntimeError(f"boom in {name}")
        return tensor

    broken = MutationMethod("explode", explode, lambda rng, evo: {}, lambda name, t: t.ndim == 2)
    recipe = Recipe.make(parents=("a", "b"), crossover="linear", crossover_params={"weights": [1.0, 1.0]},
                         mutation="explode", mutation_params={}, seed=1)
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom in model.layers.1"):
        materialise(recipe, parent_files=[tiny_models[k] / "model.safetensors" for k in "ab"],
                    base_file=tiny_models["a"] / "model.safetensors", merge=MERGE, mutation=broken,
                    out_file=tmp_path / "child.safetensors")
    assert list(tmp_path.iterdir()) == [] and torch.get_num_threads() == threads


def test_models_of_different_shapes_are_refused(tiny_models, tmp_path):
    recipe = Recipe.make(parents=("a", "wide"), crossover="linear", crossover_params={"weights": [1.0, 1.0]})
    with pytest.raises(AcdcError, match=r"models base and wide differ: tensor model.embed_tokens.weight has shape \[49152, 64\] vs \[49152, 96\]"):
        materialise(recipe, parent_files=[tiny_models[k] / "model.safetensors" for k in ("a", "wide")],
                    base_file=tiny_models["a"] / "model.safetensors", merge=MERGE, mutation=None,
                    out_file=tmp_path / "x.safetensors")


def test_truncated_weights_file_gets_a_clear_error(tiny_models, tmp_path):
    broken = tmp_path / "broken.safetensors"
    data = (tiny_models["a"] / "model.safetensors").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    recipe = Recipe.make(parents=("a", "b"), crossover="linear", crossover_params={"weights": [1.0, 1.0]})
    with pytest.raises(AcdcError, match="cannot read weights .*broken.safetensors"):
        materialise(recipe, parent_files=[tiny_models["a"] / "model.safetensors", broken],
                    base_file=tiny_models["a"] / "model.safetensors", merge=MERGE, mutation=None,
                    out_file=tmp_path / "x.safetensors")


def test_recipe_round_trips_through_json():
    r = Recipe.make(parents=("m1", "m2"), crossover="linear", crossover_params={"weights": [0.9, 1.1]},
                    mutation="svd", mutation_params={"std": 0.25, "keep_rank": 256}, seed=5)
    assert Recipe.from_json(r.to_json()) == r and hash(r) == hash(Recipe.from_json(r.to_json()))
    assert r.describe() == "linear(m1,m2)+svd"


def merge_fn(name):
    return acdc_merge_methods()[name].merge


def test_task_arithmetic_adds_weighted_task_vectors():
    base = torch.tensor([1.0, 1.0])
    out = merge_fn("task_arithmetic")("w", [torch.tensor([3.0, 1.0]), torch.tensor([1.0, 5.0])], base,
                                      {"weights": [1.0, 0.5]})
    assert torch.allclose(out, torch.tensor([3.0, 3.0]))  # 1 + 2*1 + 0*0.5, 1 + 0*1 + 4*0.5


def test_ties_trims_elects_signs_and_averages_agreeing_entries():
    base = torch.zeros(4)
    p1, p2 = torch.tensor([3.0, -1.0, 0.5, 2.0]), torch.tensor([-2.0, -4.0, 1.0, 1.0])
    full = merge_fn("ties")("w", [p1, p2], base, {"weights": [1.0, 1.0], "density": 1.0})
    # elected signs (+, -, +, +); p2's -2 disagrees in entry 0
    assert torch.allclose(full, torch.tensor([3.0, -2.5, 0.75, 1.5]))
    trimmed = merge_fn("ties")("w", [p1, p2], base, {"weights": [1.0, 1.0], "density": 0.5})
    # top-2 magnitudes kept: p1 -> (3, 0, 0, 2), p2 -> (-2, -4, 0, 0)
    assert torch.allclose(trimmed, torch.tensor([3.0, -4.0, 0.0, 2.0]))


def test_dare_drops_at_random_rescales_and_is_seeded(tiny_models, tmp_path):
    base = torch.zeros(10_000)
    p = torch.ones(10_000)
    torch.manual_seed(0)
    out = merge_fn("dare_linear")("w", [p, base], base, {"weights": [1.0, 1.0], "density": 0.3})
    kept = (out != 0).float().mean().item()
    # about 30 % of p's task vector survives, rescaled to keep its l1 norm; the average halves it
    assert 0.27 < kept < 0.33 and abs(out.sum().item() - 5_000) < 1.0
    one = materialise_with(tiny_models, tmp_path / "d1.safetensors", "dare_ties")
    two = materialise_with(tiny_models, tmp_path / "d2.safetensors", "dare_ties")
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_slerp_interpolates_on_the_sphere():
    v0, v1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mid = merge_fn("slerp")("w", [v0, v1], v0, {"t": 0.5})
    assert torch.allclose(mid, torch.tensor([[2**-0.5, 2**-0.5]]), atol=1e-6)


def test_breadcrumbs_drops_outliers_and_small_entries():
    base = torch.zeros(100)
    p = torch.arange(1.0, 101.0)
    out = merge_fn("breadcrumbs")("w", [p, p], base, {"weights": [1.0, 1.0], "density": 0.5, "gamma": 0.1})
    kept = out.nonzero().flatten()
    assert len(kept) == 50 and 100 - 1 not in kept.tolist() and 0 not in kept.tolist()


def materialise_with(tiny_models, out, crossover):
    method = acdc_merge_methods()[crossover]
    recipe = Recipe.make(parents=("a", "b"), crossover=crossover,
                         crossover_params=method.draw_params(2, np.random.default_rng(0), load_config()),
                         mutation="svd", mutation_params={"std": 0.25, "keep_rank": 16}, seed=3)
    materialise(recipe, parent_files=[tiny_models[k] / "model.safetensors" for k in "ab"],
                base_file=tiny_models["a"] / "model.safetensors", merge=method, mutation=SVD, out_file=out)
    return load_file(out)


@pytest.mark.parametrize("crossover", sorted(acdc_merge_methods()))
def test_every_merge_method_materialises_a_loadable_child(tiny_models, tmp_path, crossover):
    child = materialise_with(tiny_models, tmp_path / "c.safetensors", crossover)
    parent = load_file(tiny_models["a"] / "model.safetensors")
    assert child.keys() == parent.keys()
    assert all(child[k].shape == parent[k].shape and torch.isfinite(child[k]).all() for k in child)


def test_materialising_into_a_resident_model_equals_the_file(tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM

    file_child = child(tiny_models, tmp_path / "f.safetensors")
    model = AutoModelForCausalLM.from_pretrained(tiny_models["a"], dtype=torch.float32)
    resident = dict(model.state_dict())
    recipe = Recipe.make(parents=("a", "b"), crossover="linear", crossover_params={"weights": [1.0, 1.1]},
                         mutation="svd", mutation_params={"std": 0.25, "keep_rank": 16}, seed=7)
    materialise(recipe, parent_files=[tiny_models[k] / "model.safetensors" for k in "ab"],
                base_file=tiny_models["a"] / "model.safetensors", merge=MERGE, mutation=SVD, into=resident)
    assert all(torch.equal(resident[k], file_child[k]) for k in file_child)
    assert torch.equal(model.lm_head.weight, file_child["model.embed_tokens.weight"])  # tied: follows


def test_children_are_materialised_with_the_operators_their_recipes_name(tiny_models, tmp_path):
    """The config picks the operator of new children; a recipe is always built with its own names."""
    from acdc_engine.config import load_config
    from acdc_engine.run.executor import MaterialiseJob, Operators, Worker
    from acdc_engine.models.operators import OperatorRegistry
    from acdc_engine.plugin_manager import build_plugin_manager

    hook = build_plugin_manager(["merge"]).hook
    config = load_config(None, ["evolution.crossover=linear", "evolution.mutation=none"])
    worker = Worker(config=config, hook=hook, base_dir=tiny_models["a"], operators=Operators(hook, config.evolution))
    files = [tiny_models[n] / "model.safetensors" for n in ("a", "b")]
    recipe = Recipe.make(parents=("m1", "m2"), crossover="slerp", crossover_params={"t": 0.3}, seed=0)
    worker.materialise(MaterialiseJob(recipe=recipe, parent_files=files, out_file=tmp_path / "w.safetensors"))
    registry = OperatorRegistry(hook)
    merge, mutation = registry.for_recipe(recipe)
    assert merge.name == "slerp" and mutation is None
    materialise(recipe, parent_files=files, base_file=files[0], merge=merge, mutation=None,
                out_file=tmp_path / "direct.safetensors")
    built, direct = load_file(tmp_path / "w.safetensors"), load_file(tmp_path / "direct.safetensors")
    assert all(torch.equal(built[k], direct[k]) for k in direct)
    with pytest.raises(AcdcError, match=r"unknown crossover method 'nope'; known: .*linear"):
        registry.for_recipe(Recipe.make(parents=("m1", "m2"), crossover="nope", crossover_params={}, seed=0))
