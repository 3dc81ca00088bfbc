"""Forged seed experts (the forge plugin, plugins/forge/) on a tiny llama, one real SmolLM2 forge."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import subprocess
import sys
import time

import pytest
import torch
from acdc_engine.api import TickingProgress
from acdc_engine.models.checkpoint import CheckpointReader
from acdc_engine.config import load_config
from acdc_engine.digest import file_digest
from acdc_engine.errors import AcdcError
from acdc_engine.plugin_manager import build_plugin_manager
from acdc_engine.plugins.forge import cache as forge_cache
from acdc_engine.plugins.forge.cache import Forge
from acdc_engine.plugins.forge.command import forge_experts
from acdc_engine.plugins.forge.data import (
    DEFAULT_CAPABILITIES,
    EVAL_DIFFICULTIES,
    HELD_OUT_PER_FAMILY,
    Example,
    encode,
    families,
    held_out,
    instructions,
    target,
    task_examples,
)
from acdc_engine.plugins.forge.delta import DELTA, applied, read_delta, rebuild, write_expert
from acdc_engine.plugins.forge.manifest import MANIFEST
from acdc_engine.plugins.forge.training import ForgeRecipe, _kl_to_base, train
from acdc_engine.plugins.taskgen.families import TEMPLATES
from acdc_engine.models.seed_resolution import check_same_architecture, resolve, resolve_seeds
from conftest import make_tiny_model
from rich.console import Console

QUICK = ForgeRecipe(steps=3, batch_size=4, replay_per_batch=2, train_per_family=2, difficulties=(1,), max_len=96)


def tiny_settings(root, base) -> list[str]:
    return [f"models.cache_dir={root / 'cache'}", f"models.base={base}", f"models.seeds=['{base}', 'forged:{base}']",
            "generation.dtype=float32", "generation.max_new_tokens=4"]


@pytest.fixture(scope="module")
def forged(tmp_path_factory, smollm2_dir):
    """A tiny base in its own cache, and its arithmetic expert forged once."""
    root = tmp_path_factory.mktemp("forge")
    base = make_tiny_model(root / "base", smollm2_dir, seed=5)
    config = load_config(None, tiny_settings(root, base))
    hook = build_plugin_manager(["taskgen"]).hook
    smith = Forge(hook, config, recipe=QUICK)
    losses = []
    expert = smith.forge("arithmetic", on_step=lambda step, loss: losses.append((step, loss)))
    return {"root": root, "base": base, "config": config, "hook": hook, "smith": smith, "expert": expert,
            "losses": losses, "smollm2_dir": smollm2_dir}


def test_expert_has_the_base_layout_and_files_but_new_weights(forged):
    base, expert = forged["base"], forged["expert"]
    assert not expert.cached and expert.seconds > 0 and [s for s, _ in forged["losses"]] == [1, 2, 3]
    assert expert.path.parent == forged["root"] / "cache" / "forged"
    assert expert.path.name.startswith("base-arithmetic-")
    with CheckpointReader(base / "model.safetensors") as a, CheckpointReader(expert.path / "model.safetensors") as b:
        assert a.keys() == b.keys()
        assert all(a.shape(n) == b.shape(n) and a.dtype(n) == b.dtype(n) for n in a.keys())
        changed = [n for n in a.keys() if not a.tensor(n).equal(b.tensor(n))]
    assert any("q_proj" in n for n in changed) and any("down_proj" in n for n in changed)
    assert not any("norm" in n or "embed" in n for n in changed)  # LoRA touches the linear layers only
    for f in base.iterdir():
        if f.name != "model.safetensors":
            assert (expert.path / f.name).read_bytes() == f.read_bytes()
    check_same_architecture({"base": base, "expert": expert.path})
    manifest = json.loads((expert.path / MANIFEST).read_text())
    assert manifest["base"] == str(base) and manifest["capability"] == "arithmetic"
    assert manifest["recipe"]["steps"] == 3 and manifest["task_examples"] > 0 and manifest["replay_examples"] > 0


def digest(path):
    return file_digest(path / "model.safetensors")


def test_expert_weights_are_rebuilt_bit_for_bit_from_its_delta(forged, tmp_path):
    expert = forged["expert"].path
    factors, manifest, expert_digest = read_delta(expert / DELTA)
    assert expert_digest == digest(expert) and manifest == json.loads((expert / MANIFEST).read_text())
    assert len(factors) == 2 * 7 and all(a.shape[0] == QUICK.rank == b.shape[1] for a, b in factors.values())
    again = rebuild(expert / DELTA, forged["base"], tmp_path)
    assert digest(tmp_path) == expert_digest and again["capability"] == "arithmetic"
    assert again["created"] > manifest["created"] and again["rebuilt_from"] == DELTA
    other = make_tiny_model(tmp_path / "other", forged["smollm2_dir"], seed=6)
    with pytest.raises(AcdcError, match=rf"^expert delta {DELTA} was made over a base of digest \w+, not {other} "):
        rebuild(expert / DELTA, other, tmp_path / "x")


def test_a_delta_is_applied_in_one_fixed_order_of_ieee_operations():
    """The weights a delta rebuilds are defined without BLAS: each entry is the base's, plus the rank-one
    terms in rank order in float64, rounded once; the same with 1 thread or 2."""
    gen = torch.Generator().manual_seed(0)
    w, a, b = (torch.randn(shape, generator=gen) for shape in ((5, 7), (3, 7), (5, 3)))
    expected = torch.empty_like(w)
    for i in range(5):
        for j in range(7):
            total = float(w[i, j])
            for k in range(3):
                total += float(b[i, k]) * float(a[k, j])
            expected[i, j] = total
    assert applied(w, a, b).view(torch.int32).equal(expected.view(torch.int32))
    big = [torch.randn(n, generator=gen) for n in ((1536, 576), (16, 576), (1536, 16))]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = applied(*big)
        torch.set_num_threads(2)
        assert applied(*big).equal(one)
    finally:
        torch.set_num_threads(threads)


def test_a_shipped_delta_is_rebuilt_instead_of_trained(forged, tmp_path, monkeypatch):
    """A delta in the forge's shipped folder named like the expert of these inputs stands in for training:
    a fresh cache gets the same weights bit for bit, and ``--force`` trains again."""
    expert = forged["expert"].path
    shipped = tmp_path / "deltas"
    shipped.mkdir()
    (shipped / f"{expert.name}.safetensors").write_bytes((expert / DELTA).read_bytes())
    monkeypatch.setattr(forge_cache, "SHIPPED_DIR", shipped)
    config = load_config(None, tiny_settings(tmp_path, forged["base"]))
    smith = Forge(forged["hook"], config, recipe=QUICK)
    assert smith.shipped("arithmetic") == shipped / f"{expert.name}.safetensors" and smith.shipped("strings") is None

    out = io.StringIO()
    with TickingProgress(console=Console(file=out, force_terminal=False, width=200), transient=True) as progress:
        made = forge_experts(smith, ["arithmetic"], progress)["arithmetic"]
    lines = out.getvalue().splitlines()
    assert not [line for line in lines if line.startswith("forging")], lines  # no training bar, no replay
    assert [line for line in lines if line.startswith("arithmetic: rebuilt in ")
            and " from the delta shipped with the forge: " in line], lines
    assert made.shipped and not made.cached and made.path == tmp_path / "cache" / "forged" / expert.name
    assert digest(made.path) == digest(expert) and not smith.replay_file.exists()  # no replay needed
    assert smith.forge("arithmetic").cached
    assert not smith.forge("arithmetic", force=True).shipped


def test_training_and_held_out_instances_are_disjoint():
    hook = build_plugin_manager(["taskgen"]).hook
    train = {s.source for s in families(hook, "strings", (1, 2), 3, "train")}
    held = {s.source for s in families(hook, "strings", (1, 2), 3, "held-out")}
    assert train and held and not train & held


def test_held_out_instructions_are_distinct_and_never_trained_on_nor_replayed(forged):
    smith = forged["smith"]
    held = [inst.instruction for pairs in smith.held.values() for _, insts in pairs for inst in insts]
    assert len(held) == len(set(held)) == len(instructions(smith.held))
    drawn = HELD_OUT_PER_FAMILY * len(TEMPLATES["units"].variants) * len(EVAL_DIFFICULTIES)
    assert 0 < sum(len(insts) for _, insts in smith.held["units"]) < drawn  # a small space repeats itself
    replayed = [r.prompt for r in smith.replay_prompts]
    assert len(replayed) == len(set(replayed)) and not set(held) & set(replayed)
    recipe = ForgeRecipe(train_per_family=16, difficulties=(1, 2))
    unfiltered = task_examples(smith.hook, "strings", recipe, smith.config.sandbox, exclude=set())
    assert {t.prompt for t in unfiltered} & set(held)  # the splits' small spaces meet...
    tasks = task_examples(smith.hook, "strings", recipe, smith.config.sandbox, instructions(smith.held))
    assert tasks and not {t.prompt for t in tasks} & set(held)  # ...and training leaves the held-out ones out


def test_worked_targets_show_steps_that_reach_the_answer():
    worked = 0
    for template in TEMPLATES.values():
        for variant in template.variants.values():
            for d in range(1, 6):
                data = variant.make(random.Random(d), d)
                reply = target(data)
                assert reply.endswith(target(data, worked=False)), reply
                if "working" in data:
                    worked += 1
                    spelled_out = data["working"].replace("-", "")  # letters written a-p-p-l-e
                    assert str(data["answer"]) in (data["working"] + spelled_out), (variant.name, data)
                    assert reply == f"{data['working']}\nAnswer: {data['answer']}"
    assert worked == 5 * 13  # arithmetic (3 variants), strings (4), units (3), code (3)


def test_kl_replay_loss_is_zero_only_where_the_expert_agrees_with_the_base():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, 8, 9, 10]])
    base = torch.randn(2, 5, 11)
    assert _kl_to_base(base.clone(), base, labels).item() == pytest.approx(0.0, abs=1e-6)
    moved = base.clone()
    moved[0, 4] += torch.randn(11)  # a position after the reply's last label: not scored
    assert _kl_to_base(moved, base, labels).item() == pytest.approx(0.0, abs=1e-6)
    moved[1, 2] += torch.randn(11)  # predicts label 8
    assert _kl_to_base(moved, base, labels).item() > 1e-3


def test_bad_recipe_fields_are_named():
    with pytest.raises(AcdcError, match="replay_loss must be 'kl' or 'ce', not 'mse'"):
        ForgeRecipe(replay_loss="mse")
    for replayed in (8, 9, -1):
        with pytest.raises(AcdcError, match=rf"^forge replay_per_batch must be .* below batch_size \(8\), "
                                            rf"not {replayed}: each step needs a task example$"):
            ForgeRecipe(batch_size=8, replay_per_batch=replayed)
    assert ForgeRecipe(batch_size=8, replay_per_batch=0).replay_per_batch == 0
    with pytest.raises(AcdcError, match=r"^forge lora_layers must be at least 1 \(or None for all layers\), not 0$"):
        ForgeRecipe(lora_layers=0)
    with pytest.raises(AcdcError, match=r"^forge protect_energy must be between 0 and 1 \(or None\), not 1$"):
        ForgeRecipe(protect_energy=1)
    with pytest.raises(AcdcError, match=r"^forge threads must be at least 1, not 0$"):
        ForgeRecipe(threads=0)


def test_adapters_change_only_the_first_lora_layers(forged):
    """``lora_layers=1`` on the 2-layer base: every linear layer of layer 0 moves, nothing of layer 1."""
    smith = Forge(forged["hook"], forged["config"], recipe=dataclasses.replace(QUICK, lora_layers=1))
    expert = smith.forge("arithmetic")
    with CheckpointReader(forged["base"] / "model.safetensors") as a, \
            CheckpointReader(expert.path / "model.safetensors") as b:
        changed = {n for n in a.keys() if not a.tensor(n).equal(b.tensor(n))}
    linear = [f"self_attn.{n}" for n in ("q_proj", "k_proj", "v_proj", "o_proj")] + \
        [f"mlp.{n}" for n in ("gate_proj", "up_proj", "down_proj")]
    assert changed == {f"model.layers.0.{name}.weight" for name in linear}


def test_protected_text_keeps_the_base_outputs_while_the_weights_move(forged, tmp_path):
    """With (nearly) all of a protected text's input energy protected, the trained weights change but
    map that text's inputs as the base does, layer by layer: its logits stay the base's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = forged["base"]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    kept = Example("Name three primary colors.", "Red, yellow and blue.")
    tasks = [Example(f"What is {a} + {b}?", f"Answer: {a + b}") for a, b in ((2, 3), (4, 1), (7, 5), (6, 6))]
    recipe = dataclasses.replace(QUICK, lr=1e-2, protect_energy=1 - 1e-9, bf16=False)
    write_expert(base_dir, train(base_dir, tasks, [], recipe, protected=[kept]), tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        moved = [(model.state_dict()[n] - w).abs().max().item() for n, w in base.state_dict().items()
                 if n.endswith("proj.weight")]
        logits = {}
        for text in (kept, tasks[0]):
            ids = torch.tensor([encode(tokenizer, text, 96)[0]])
            logits[text] = (base(input_ids=ids).logits, model(input_ids=ids).logits)
    assert min(moved) > 1e-4
    assert torch.allclose(*logits[kept], atol=1e-3)  # 1.8e-4 measured on 2026-12-03; the task text moves ~0.9
    assert not torch.allclose(*logits[tasks[0]], atol=1e-2)


def test_second_forge_is_cached_and_force_forges_again(forged):
    smith, expert = forged["smith"], forged["expert"]
    started = time.monotonic()
    again = smith.forge("arithmetic")
    assert again.cached and again.path == expert.path and time.monotonic() - started < 5
    created = json.loads((expert.path / MANIFEST).read_text())["created"]
    weights = digest(expert.path)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the recipe's thread count (1) trains, whatever the process has
    try:
        redone = smith.forge("arithmetic", force=True)
    finally:
        torch.set_num_threads(threads)
    assert not redone.cached and redone.path == expert.path
    assert digest(expert.path) == weights  # the same recipe forged again: the same weights, bit for bit
    assert json.loads((expert.path / MANIFEST).read_text())["created"] > created
    assert sorted(p.name for p in expert.path.parent.iterdir() if p.name.startswith(".")) == []


def test_other_settings_give_another_directory(forged):
    other = Forge(forged["hook"], forged["config"], recipe=ForgeRecipe(**{**QUICK.__dict__, "lr": 5e-4}))
    assert other.path("arithmetic") != forged["expert"].path
    assert forged["smith"].path("strings") != forged["expert"].path
    assert other.replay_file == forged["smith"].replay_file  # replay data is per base, shared


def test_changed_training_data_gives_another_directory(forged, monkeypatch):
    """A family whose instances change (here its working) must not reuse the expert trained on the old ones."""
    smith = forged["smith"]
    before = smith.path("strings")
    variants = TEMPLATES["strings"].variants
    old = variants["first-letter"]
    monkeypatch.setitem(variants, "first-letter",
                        dataclasses.replace(old, make=lambda rng, d: {**old.make(rng, d), "working": "new steps."}))
    assert smith.path("strings") != before
    assert smith.path("arithmetic") == forged["expert"].path


def test_interrupted_forge_leaves_nothing_half_written(forged):
    def stop(step, loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        forged["smith"].forge("strings", on_step=stop)
    cache = forged["root"] / "cache" / "forged"
    assert not [p for p in cache.iterdir() if "strings" in p.name or p.name.startswith(".")]


def test_unknown_capability_is_named(forged):
    with pytest.raises(AcdcError, match=r"^unknown capability 'poetry'; known: arithmetic, strings, lists, units, "
                                        r"code, knowledge$"):
        forged["smith"].forge("poetry")


def test_forged_spec_resolves_to_the_experts_of_its_base(forged):
    hook, base, cache = forged["hook"], forged["base"], forged["root"] / "cache"
    seeds, base_dir = resolve_seeds(hook, forged["config"].models)
    assert seeds == {str(base): base, f"forged:{base}:arithmetic": forged["expert"].path} and base_dir == base
    assert resolve(hook, f"forged:{base}:arithmetic", cache) == forged["expert"].path
    assert hook.acdc_resolve_seed(spec="forged:elsewhere", cache_dir=cache) == {}
    with pytest.raises(AcdcError, match=r"^seed forged:.*:units: no units expert forged from .* yet"):
        resolve(hook, f"forged:{base}:units", cache)
    with pytest.raises(AcdcError, match=r"names a group of models \(1\), not one model"):
        resolve(hook, f"forged:{base}", cache)


def test_no_expert_yet_means_the_base_alone(tmp_path, tiny_models):
    config = load_config(None, tiny_settings(tmp_path, tiny_models["a"]))
    seeds, _ = resolve_seeds(build_plugin_manager([]).hook, config.models)
    assert list(seeds) == [str(tiny_models["a"])]
    alone = load_config(None, [*tiny_settings(tmp_path, tiny_models["a"]), f"models.seeds=['forged:{tiny_models['a']}']"])
    with pytest.raises(AcdcError, match=r"^the seed specs forged:.* name no model yet$"):
        resolve_seeds(build_plugin_manager([]).hook, alone.models)


def test_default_config_uses_the_base_and_its_forged_experts(tmp_path, smollm2_dir):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / smollm2_dir.name).symlink_to(smollm2_dir)
    config = load_config(None, [f"models.cache_dir={cache}"])
    hook = build_plugin_manager([]).hook
    assert list(resolve_seeds(hook, config.models)[0]) == ["smollm2"]
    for cap, created in (("code", 2.0), ("arithmetic", 1.0), ("code", 1.0)):  # the newest per capability counts
        expert = cache / "forged" / f"smollm2-{cap}-{created}"
        expert.mkdir(parents=True)
        for f in smollm2_dir.iterdir():
            (expert / f.name).symlink_to(f)
        (expert / MANIFEST).write_text(json.dumps({"base": "smollm2", "capability": cap, "created": created}))
    seeds, base = resolve_seeds(hook, config.models)
    assert seeds == {"smollm2": base, "forged:smollm2:arithmetic": cache / "forged/smollm2-arithmetic-1.0",
                     "forged:smollm2:code": cache / "forged/smollm2-code-2.0"}
    assert base == cache / smollm2_dir.name


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "acdc_engine", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, "COLUMNS": "160"})


def test_cli_forges_evaluates_and_reuses(tmp_path, tiny_models):
    sets = [a for s in tiny_settings(tmp_path, tiny_models["b"]) for a in ("--set", s)]
    first = cli("forge", "--capabilities", "code", "--steps", "2", *sets, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "code: forged in " in first.stdout and "held-out pass rate %" in first.stdout
    table = first.stdout[first.stdout.index("held-out pass rate"):]
    config = load_config(None, tiny_settings(tmp_path, tiny_models["b"]))
    held_out_code = sum(len(insts) for _, insts in held_out(build_plugin_manager(["taskgen"]).hook, config.sandbox,
                                                              ["code"])["code"])
    assert "base" in table and "code expert" in table and f"code ({held_out_code})" in table and "*" in table
    assert "code expert: " in table and " points on code; elsewhere " in table
    second = cli("forge", "--capabilities", "code", "--steps", "2", "--no-eval", *sets, cwd=tmp_path)
    assert second.returncode == 0 and "code: cached (forged in " in second.stdout
    assert "held-out pass rate" not in second.stdout and "evaluating on held-out" not in second.stdout
    unprotected = cli("forge", "--capabilities", "code", "--steps", "2", "--protect-energy", "0", "--no-eval", *sets,
                      cwd=tmp_path)
    assert unprotected.returncode == 0 and "code: forged in " in unprotected.stdout
    recipes = [json.loads(m.read_text())["recipe"] for m in (tmp_path / "cache" / "forged").glob(f"*/{MANIFEST}")]
    assert sorted(str(r["protect_energy"]) for r in recipes) == ["0.9", "None"]


def test_cli_names_bad_input(tmp_path):
    result = cli("forge", "--capabilities", "arithmetic,poetry", cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (
        3, "error: unknown capability 'poetry'; known: arithmetic, strings, lists, units, code, knowledge")
    result = cli("forge", "--base", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (3, f"error: seed model path {tmp_path / 'nowhere'} "
                                                             "does not exist")


@pytest.mark.slow
def test_real_smollm2_expert_is_mergeable_with_its_base(tmp_path, smollm2_dir):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / smollm2_dir.name).symlink_to(smollm2_dir)
    config = load_config(None, [f"models.cache_dir={cache}", "generation.max_new_tokens=4"])
    hook = build_plugin_manager(["taskgen"]).hook
    recipe = ForgeRecipe(steps=2, batch_size=2, replay_per_batch=1, train_per_family=1, difficulties=(1,), max_len=96)
    expert = Forge(hook, config, recipe=recipe).forge("arithmetic")
    seeds, base = resolve_seeds(hook, config.models)  # the default seeds: smollm2 + forged:smollm2
    assert seeds == {"smollm2": base, "forged:smollm2:arithmetic": expert.path} and base == cache / smollm2_dir.name
    backend = hook.acdc_make_backend(config=config, model_dir=base)
    backend.load_weights(expert.path / "model.safetensors")
    (answer,) = backend.generate(["What is the capital of France?"], max_new_tokens=4)
    assert any(c.isalpha() for c in answer)



@pytest.mark.slow
def test_the_shipped_deltas_rebuild_the_default_experts_bit_for_bit(tmp_path, smollm2_dir):
    """Every default expert of the real base ships as a delta of at most 20 MB, named like the expert the
    default recipe forges (a change to the recipe, the families or the replay that moves that name needs the
    deltas forged and shipped again: docs/architecture.md, *Forged seed experts*), and rebuilds to the
    weights it was made with."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / smollm2_dir.name).symlink_to(smollm2_dir)
    smith = Forge(build_plugin_manager(["taskgen"]).hook, load_config(None, [f"models.cache_dir={cache}"]))
    for cap in DEFAULT_CAPABILITIES:
        delta = smith.shipped(cap)
        assert delta is not None, f"no delta ships for the default {cap} expert {smith.path(cap).name}"
        assert delta.stat().st_size <= 20_000_000

        def no_training(step, loss):
            raise AssertionError("trained although a delta was shipped")

        made = smith.forge(cap, on_step=no_training)
        assert made.shipped and digest(made.path) == read_delta(delta)[2]
    seeds, _ = resolve_seeds(smith.hook, smith.config.models)
    assert sorted(seeds) == ["forged:smollm2:arithmetic", "forged:smollm2:code", "forged:smollm2:strings", "smollm2"]
