"""The CMA-ES emitter: it optimises merge weights through ask/tell, runs in the loop, and resumes exactly."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
from ribs.schedulers import Scheduler

from acdc_engine.archives import CMAEmitter, ModelArchive
from acdc_engine.config import load_config
from acdc_engine.digest import file_digest
from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl
from acdc_engine.lineage import rebuild_weights
from acdc_engine.loop import Coevolution
from acdc_engine.operators import OperatorRegistry
from acdc_engine.plugin_manager import build_plugin_manager
from acdc_engine.recipe import Recipe
from acdc_engine.store import RunStore
from conftest import run_in_process

TARGET = np.array([1.6, 0.5])


def emitter_on(archive, config, seed=0, crossover="linear"):
    merge = OperatorRegistry(build_plugin_manager(["merge"]).hook).merge(crossover)
    return CMAEmitter(archive, batch_size=config.evolution.offspring_per_generation, merge=merge, mutation=None,
                      config=config, seed=seed)


def seeded_archive():
    """A DNS archive with room for everyone (every viable child enters), holding two seeds."""
    archive = ModelArchive(capacity=10_000, measure_dim=1, k_neighbors=3, seed=0)
    seeds = np.array([Recipe(seed_spec="a"), Recipe(seed_spec="b")] + [None], dtype=object)[:-1]
    archive.add(seeds, np.array([-9.0, -9.0]), np.zeros((2, 1)), model_id=np.array(["s1", "s2"], dtype=object),
                viable=np.ones(2, dtype=bool))
    return archive


def generation(emitter, scheduler, gen):
    """One ask/tell on the synthetic objective: minus the squared distance of the merge weights to TARGET."""
    emitter.reseed(gen)
    recipes = scheduler.ask()
    weights = np.array([dict(r.crossover_params)["weights"] for r in recipes])
    objective = -((weights - TARGET) ** 2).sum(axis=1)
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


def test_state_round_trips_through_json():
    config = load_config(None, [])
    archive = seeded_archive()
    a = emitter_on(archive, config)
    scheduler = Scheduler(archive, [a], add_mode="batch")
    for gen in range(5):
        generation(a, scheduler, gen)
    b = emitter_on(archive, config, seed=123)
    b.load_state(json.loads(json.dumps(a.state())))
    a.reseed(99)
    b.reseed(99)
    assert list(a.ask()) == list(b.ask())


def test_bad_settings_are_one_line_errors(tiny_config):
    for setting, culprit in [("evolution.emitter=annealing", "evolution.emitter"),
                             ("evolution.cma_sigma0=0", "evolution.cma_sigma0"),
                             ("evolution.cma_weight_bounds=[1.5, 2.0]", "cma_weight_bounds")]:
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
    config = tiny_config(**{"evolution.emitter": "cma-es"})
    run_dir = tmp_path / "run"
    evo = run_in_process(config, run_dir)
    rows = recipes(run_dir)
    children = [(m, Recipe.from_json(r), d) for m, r, d in rows if not Recipe.from_json(r).is_seed]
    assert len(children) == 1 + 2 + 2
    for _, recipe, _ in children:  # the ES's samples, within the bounds, are the recipes' weights
        weights = dict(recipe.crossover_params)["weights"]
        assert len(weights) == 2 and all(0.0 <= w <= 2.0 for w in weights)
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
    config = tiny_config(**{"evolution.emitter": "cma-es", "run.generations": 3})
    run_in_process(config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run_in_process(config, tmp_path / "cut", [Crash()])
    db = sqlite3.connect(tmp_path / "cut" / "run.sqlite")
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 1
    db.close()
    run_in_process(config, tmp_path / "cut", resume=True)
    assert recipes(tmp_path / "cut") == recipes(tmp_path / "whole")
