"""The model archive (pyribs DNS), the emitter, task-pool rules and task forces."""

import numpy as np
from ribs.schedulers import Scheduler

from acdc_engine.archives import ModelArchive, RecipeEmitter, coverage, greedy_task_force, plan_adaptation
from acdc_engine.archives.pool_adaptation import prune_oldest
from acdc_engine.config import load_config
from acdc_engine.plugins.merge.merge_plugin import acdc_merge_methods, acdc_mutation_methods
from acdc_engine.recipe import Recipe


def obj_array(items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def filled_archive(capacity=3):
    archive = ModelArchive(capacity=capacity, measure_dim=4, k_neighbors=3, seed=0)
    seeds = [Recipe(seed_spec=s) for s in "abcd"]
    measures = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=float)
    archive.add(obj_array(seeds), np.array([0.9, 0.5, 0.3, 0.4]), measures,
                model_id=obj_array(["m1", "m2", "m3", "m4"]), viable=np.ones(4, dtype=bool))
    return archive


def test_dns_keeps_models_that_solve_what_fitter_ones_do_not():
    archive = filled_archive()
    kept = set(archive.member_ids())
    # m2 solves exactly what the fitter m1 solves: dominated, dropped first
    assert "m2" not in kept and {"m1", "m3"} <= kept and len(kept) == 3


def test_non_viable_models_never_enter():
    archive = ModelArchive(capacity=5, measure_dim=2, k_neighbors=3, seed=0)
    info = archive.add(obj_array([Recipe(seed_spec="x"), Recipe(seed_spec="y")]), np.array([0.9, 0.1]),
                       np.array([[1.0, 0.0], [0.0, 1.0]]), model_id=obj_array(["ok", "bad"]),
                       viable=np.array([False, True]))
    assert archive.member_ids() == ["bad"] and info["status"][0] == 0 and np.isnan(info["dns"][0])


def test_emitter_asks_recipes_with_parents_from_the_archive_through_a_scheduler():
    archive = filled_archive()
    emitter = RecipeEmitter(archive, batch_size=4, merge=acdc_merge_methods()["linear"],
                            mutation=acdc_mutation_methods()["svd"], config=load_config(), seed=1)
    scheduler = Scheduler(archive, [emitter], add_mode="batch")
    recipes = scheduler.ask()
    assert len(recipes) == 4
    members = set(archive.member_ids())
    for r in recipes:
        assert isinstance(r, Recipe) and set(r.parents) <= members and r.crossover == "linear"
        assert dict(r.mutation_params) == {"std": 0.05, "keep_rank": 256, "relative": True}
    emitter.reseed(5)
    again = emitter.ask()
    emitter.reseed(5)
    assert list(again) == list(emitter.ask())
    scheduler.tell(np.zeros(4), np.zeros((4, 4)), model_id=obj_array(["n1", "n2", "n3", "n4"]),
                   viable=np.ones(4, dtype=bool))
    assert len(archive) == 3


def test_rebuild_replaces_the_population():
    archive = filled_archive()
    archive.rebuild([Recipe(seed_spec="z")], ["m9"], [0.5], [[0, 0, 0, 1]])
    assert archive.member_ids() == ["m9"]


def test_adaptation_rule():
    rates = {"nobody": 0.0, "most": 0.75, "half": 0.5, "few": 0.25}
    plan = plan_adaptation(rates, n_new=10, rng=np.random.default_rng(0))
    assert plan.remove == ["nobody"] and plan.harder == ["most"] and sorted(plan.novel) == ["few", "half"]
    capped = plan_adaptation(rates, n_new=1, rng=np.random.default_rng(0))
    assert len(capped.harder) + len(capped.novel) == 1


def test_pruning_keeps_the_newest():
    assert prune_oldest(["t1", "t2", "t3"], 2) == (["t2", "t3"], ["t1"])


def test_greedy_task_force_maximises_coverage():
    solved = np.array([
        [1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ], dtype=bool)
    force = greedy_task_force(solved, 2)
    assert force == [0, 2] and coverage(solved[force]) == 5 / 6
    assert coverage(solved[[1]]) == 2 / 6


def test_greedy_task_force_breaks_ties_by_raised_scores_once_coverage_stops_growing():
    scores = np.array([
        [1.0, 0.67, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 0.67, 0.0],  # a copy of row 0: adds nothing
        [0.67, 1.0, 0.0],  # as fit, solves the same tasks, but lifts task 1 from 0.67 to 1.0
    ])
    solved, fitness = scores >= 0.5, scores.mean(axis=1)
    assert greedy_task_force(solved, 3, fitness) == [0, 1, 2]  # Coverage full after two; then fitness, index
    assert greedy_task_force(solved, 3, fitness, scores) == [0, 1, 3]
    assert greedy_task_force(solved, 4, fitness, scores) == [0, 1, 3, 2]
