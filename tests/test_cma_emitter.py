"""The CMA-ES emitter: it optimises merge weights per block of layers through ask/tell, runs in the loop, keeps its
state as plain numbers, and resumes exactly."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
import ribs
from ribs.schedulers import Scheduler

from acdc_engine.archives import CMAEmitter, ModelArchive
from acdc_engine.archives.cma_emitter import STATE_FORMAT, TESTED_RIBS
from acdc_engine.config import load_config
from acdc_engine.digest import file_digest
from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl
from acdc_engine.models.lineage import rebuild_weights
from acdc_engine.run.loop import Coevolution
from acdc_engine.models.operators import OperatorRegistry
from acdc_engine.plugin_manager import build_plugin_manager
from acdc_engine.recipe import Recipe
from acdc_engine.store import RunStore
from conftest import run_in_process

TARGET = np.array([1.6, 0.5])
BLOCK_TARGET = np.array([[1.6, 0.5], [0.4, 1.5], [1.0, 1.8]])  # three blocks: a direction per block


def emitter_on(archive, config, seed=0, crossover="linear", num_layers=2):
    merge = OperatorRegistry(build_plugin_manager(["merge"]).hook).merge(crossover)
    return CMAEmitter(archive, batch_size=config.evolution.offspring_per_generation, merge=merge, mutation=None,
                      config=config, num_layers=num_layers, seed=seed)


def seeded_archive():
    """A DNS archive with room for everyone (every viable child enters), holding two seeds."""
    archive = ModelArchive(capacity=10_000, measure_dim=1, k_neighbors=3, seed=0)
    seeds = np.array([Recipe(seed_spec="a"), Recipe(seed_spec="b")] + [None], dtype=object)[:-1]
    archive.add(seeds, np.array([-9.0, -9.0]), np.zeros((2, 1)), model_id=np.array(["s1", "s2"], dtype=object),
                viable=np.ones(2, dtype=bool))
    return archive


def generation(emitter, scheduler, gen, target=TARGET):
    """One ask/tell on the synthetic objective: minus the squared distance of the merge weights to ``target``."""
    emitter.reseed(gen)
    recipes = scheduler.ask()
    weights = np.array([dict(r.crossover_params)["weights"] for r in recipes])
    objective = -((weights - target) ** 2).reshape(len(recipes), -1).sum(axis=1)
    weights = weights.reshape(len(recipes), -1)
    ids = np.array([f"g{gen}c{i}" for i in range(len(recipes))] + [None], dtype=object)[:-1]
    scheduler.tell(objective, weights[:, :1], model_id=ids, viable=np.ones(len(recipes), dtype=bool))
    return recipes


def test_es_mean_moves_toward_better_weights():
    config = load_config(None, ["evolution.offspring_per_generation=8"])
    archive = seeded_archive()
    emitter = emitter_on(archive, config)
    scheduler = Scheduler(archive, [emitter], add_mode="batch")
    start = np.linalg.norm(emitter.mean - TARGET)
    for gen in range(40):
        recipes = generation(emitter, scheduler, gen)
        assert all(r.parents == ("s1", "s2") and r.crossover == "linear" for r in recipes)  # one group, no restart
    assert emitter.restarts == 0 and emitter.itrs == 40
    assert np.linalg.norm(emitter.mean - TARGET) < start / 10


def test_es_searches_one_weight_per_parent_and_block_of_layers():
    config = load_config(None, ["evolution.offspring_per_generation=8", "evolution.cma_layer_granularity=2"])
    archive = seeded_archive()
    emitter = emitter_on(archive, config, num_layers=5)  # blocks of layers 0-1, 2-3 and 4
    assert (emitter.blocks, emitter.dim) == (3, 6)
    scheduler = Scheduler(archive, [emitter], add_mode="batch")
    start = np.linalg.norm(emitter.mean - BLOCK_TARGET.ravel())
    for gen in range(60):
        recipes = generation(emitter, scheduler, gen, BLOCK_TARGET)
    params = dict(recipes[0].crossover_params)
    assert params["layer_granularity"] == 2 and np.shape(params["weights"]) == (3, 2)
    assert emitter.restarts == 0
    mean = emitter.mean.reshape(3, 2)  # each block's ratio found apart from the others'
    assert np.linalg.norm(mean - BLOCK_TARGET) < start / 5
    assert mean[0, 0] > mean[0, 1] and mean[1, 0] < mean[1, 1]
    whole = emitter_on(archive, load_config(None, ["evolution.cma_layer_granularity=0"]), num_layers=5)
    assert (whole.blocks, whole.dim) == (1, 2)
    assert "layer_granularity" not in dict(whole.ask()[0].crossover_params)  # one block: plain weights


@pytest.mark.parametrize("granularity", [0, 1])
def test_state_is_plain_numbers_and_round_trips_through_json(granularity):
    config = load_config(None, [f"evolution.cma_layer_granularity={granularity}"])
    archive = seeded_archive()
    a = emitter_on(archive, config)
    scheduler = Scheduler(archive, [a], add_mode="batch")
    for gen in range(5):
        generation(a, scheduler, gen, TARGET if granularity == 0 else BLOCK_TARGET[:2])
    state = a.state()
    assert state["format"] == STATE_FORMAT and state["blocks"] == 2 - (granularity == 0)
    assert set(state["es"]) == {"mean", "sigma", "evaluations", "path_sigma", "path_c", "cov", "eigenbasis",
                                "eigenvalues", "invsqrt", "condition_number", "decomposed_at"}
    assert json.loads(json.dumps(state)) == state  # plain numbers, nothing of pyribs' own
    b = emitter_on(archive, config, seed=123)
    b.load_state(json.loads(json.dumps(state)))
    assert b.state() == state
    a.reseed(99)
    b.reseed(99)
    assert list(a.ask()) == list(b.ask())


def test_a_state_saved_before_the_format_was_versioned_loads():
    config = load_config(None, ["evolution.cma_layer_granularity=0"])
    archive = seeded_archive()
    a = emitter_on(archive, config)
    scheduler = Scheduler(archive, [a], add_mode="batch")
    for gen in range(4):
        generation(a, scheduler, gen)
    state = a.state()
    names = {"evaluations": "current_eval", "path_sigma": "ps", "path_c": "pc", "decomposed_at": "updated_eval"}
    old = {"parents": state["parents"], "restarts": state["restarts"], "itrs": state["itrs"],
           **{names.get(k, k): v for k, v in state["es"].items()}}  # format 1: pyribs' names at the top level
    b = emitter_on(archive, config, seed=7)
    b.load_state(json.loads(json.dumps(old)))
    a.reseed(5)
    b.reseed(5)
    assert list(a.ask()) == list(b.ask())


def test_the_state_goes_back_into_the_pyribs_it_was_tested_on():
    # The state's numbers are put back through attributes of pyribs' CMAEvolutionStrategy: after an upgrade, run
    # this file's resume tests and, when they pass, set TESTED_RIBS (archives/cma_emitter.py) to the new version.
    assert ribs.__version__ == TESTED_RIBS, f"pyribs {ribs.__version__} is not the tested {TESTED_RIBS}"


def test_a_state_of_another_size_is_a_one_line_error():
    archive = seeded_archive()
    saved = emitter_on(archive, load_config(None, ["evolution.cma_layer_granularity=1"])).state()
    with pytest.raises(AcdcError, match="cma_layer_granularity") as info:
        emitter_on(archive, load_config(None, ["evolution.cma_layer_granularity=0"])).load_state(saved)
    assert "\n" not in str(info.value)


def test_bad_settings_are_one_line_errors(tiny_config):
    for setting, culprit in [("evolution.emitter=annealing", "evolution.emitter"),
                             ("evolution.cma_sigma0=0", "evolution.cma_sigma0"),
                             ("evolution.cma_weight_bounds=[1.5, 2.0]", "cma_weight_bounds"),
                             ("evolution.cma_layer_granularity=-1", "evolution.cma_layer_granularity")]:
        with pytest.raises(AcdcError, match=culprit) as info:
            load_config(None, [setting])
        assert "\n" not in str(info.value)
    config = tiny_config(**{"evolution.emitter": "cma-es", "evolution.crossover": "slerp"})
    with pytest.raises(AcdcError, match="crossover 'slerp' has none") as info:
        Coevolution(config, None, build_plugin_manager(["merge", "taskgen"]))
    assert "\n" not in str(info.value)


def recipes(run_dir):
    db = sqlite3.connect(run_dir / "run.sqlite")
    try:
        return db.execute("SELECT id, recipe, digest FROM models ORDER BY id").fetchall()
    finally:
        db.close()


def test_tiny_cma_run_rebuilds_its_children(tiny_config, tiny_models, tmp_path):
    config = tiny_config(**{"evolution.emitter": "cma-es", "evolution.cma_layer_granularity": 1})
    run_dir = tmp_path / "run"
    evo = run_in_process(config, run_dir)
    rows = recipes(run_dir)
    children = [(m, Recipe.from_json(r), d) for m, r, d in rows if not Recipe.from_json(r).is_seed]
    assert len(children) == 1 + 2 + 2
    for _, recipe, _ in children:  # the ES's samples, within the bounds, are the recipes' weights per layer
        params = dict(recipe.crossover_params)
        weights = np.array(params["weights"])
        assert params["layer_granularity"] == 1 and weights.shape == (2, 2)  # 2 layers, 2 parents
        assert ((0.0 <= weights) & (weights <= 2.0)).all()
    assert len({dict(r.crossover_params)["weights"] for _, r, _ in children}) == len(children)
    db = sqlite3.connect(run_dir / "run.sqlite")
    states = [json.loads(s) for (s,) in db.execute("SELECT state FROM emitter_states ORDER BY generation")]
    db.close()
    assert len(states) == 3 and states[-1]["itrs"] == 3 and states[-1] == evo.emitter.state()
    # with every kept child file removed, each child is rebuilt from its recipe to its recorded digest
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    store = RunStore.open(copy)
    seeds = {d for _, r, d in rows if Recipe.from_json(r).is_seed}
    for path in (copy / "weights").glob("*.safetensors"):
        if path.stem not in seeds:
            path.unlink()
    hook = build_plugin_manager(["merge"]).hook
    try:
        for model_id, _, digest in children:
            out = tmp_path / f"{model_id}.safetensors"
            rebuild_weights(store, model_id, hook=hook, base_file=tiny_models["a"] / "model.safetensors",
                            out_file=out)
            assert file_digest(out) == digest
    finally:
        store.close()


class Crash:
    """Ends the process's run mid-generation 2, after its ask (as a kill -9 would)."""

    @hookimpl
    def acdc_event(self, kind, data):
        if kind == "step" and data["name"] == "materialise" and data["generation"] == 2:
            raise KeyboardInterrupt("killed")


def test_resume_asks_for_the_same_recipes(tiny_config, tmp_path):
    config = tiny_config(**{"evolution.emitter": "cma-es", "run.generations": 3, "evolution.cma_layer_granularity": 1})
    run_in_process(config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run_in_process(config, tmp_path / "cut", [Crash()])
    db = sqlite3.connect(tmp_path / "cut" / "run.sqlite")
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 1
    db.close()
    run_in_process(config, tmp_path / "cut", resume=True)
    assert recipes(tmp_path / "cut") == recipes(tmp_path / "whole")
    assert any('"layer_granularity": 1' in r for _, r, _ in recipes(tmp_path / "whole"))
