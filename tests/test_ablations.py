"""Alternative archives, ablation switches and task-force selection methods."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from acdc_engine.archives import KINDS, make_archive, select_task_force
from acdc_engine.archives.task_force import coverage, exact_task_force
from acdc_engine.errors import AcdcError
from acdc_engine.recipe import Recipe
from test_loop_tiny import run_once


def obj(items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_archive_gates_non_viable_rows_and_rebuilds(kind):
    archive = make_archive(kind, capacity=3, measure_dim=4, k_neighbors=2, grid_cells=3, cvt_cells=8, seed=0)
    measures = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=float)
    archive.add(obj([Recipe(seed_spec=s) for s in "abcd"]), np.array([0.9, 0.5, 0.3, 0.95]), measures,
                model_id=obj(["m1", "m2", "m3", "m4"]), viable=np.array([1, 1, 1, 0], dtype=bool))
    members = archive.member_ids()
    assert "m4" not in members and "m1" in members and len(members) <= 3
    assert set(archive.member_scores()) == set(members)
    assert archive.member_objectives()["m1"] == pytest.approx(0.9)
    archive.rebuild([Recipe(seed_spec="z")], ["m9"], [0.5], [[0, 0, 0, 1]])
    assert archive.member_ids() == ["m9"]


def test_map_elites_keeps_the_fittest_per_cell_and_nsga2_keeps_the_novel():
    grid = make_archive("map-elites-grid", capacity=3, measure_dim=2, k_neighbors=2, grid_cells=2, cvt_cells=4,
                        seed=0)
    grid.add(obj([Recipe(seed_spec=s) for s in "abc"]), np.array([0.2, 0.7, 0.4]),
             np.array([[0.1, 0.1], [0.2, 0.2], [0.9, 0.9]]), model_id=obj(["a", "b", "c"]),
             viable=np.ones(3, dtype=bool))
    assert sorted(grid.member_ids()) == ["b", "c"]  # a and b share a cell; b is fitter
    nsga = make_archive("nsga2", capacity=2, measure_dim=2, k_neighbors=1, grid_cells=2, cvt_cells=4, seed=0)
    nsga.add(obj([Recipe(seed_spec=s) for s in "abc"]), np.array([0.9, 0.8, 0.1]),
             np.array([[0.0, 0.0], [0.0, 0.01], [1.0, 1.0]]), model_id=obj(["a", "b", "c"]),
             viable=np.ones(3, dtype=bool))
    assert sorted(nsga.member_ids()) == ["a", "c"]  # c is far from everyone: non-dominated on novelty
    top = make_archive("top-fitness", capacity=2, measure_dim=2, k_neighbors=1, grid_cells=2, cvt_cells=4, seed=0)
    top.add(obj([Recipe(seed_spec=s) for s in "abc"]), np.array([0.9, 0.8, 0.1]),
            np.array([[0.0, 0.0], [0.0, 0.01], [1.0, 1.0]]), model_id=obj(["a", "b", "c"]),
            viable=np.ones(3, dtype=bool))
    assert top.member_ids() == ["a", "b"]


SOLVED = np.array([  # greedy takes row 0 first and misses the exact cover by rows 1 and 2
    [1, 1, 1, 1, 0, 0],
    [1, 0, 1, 0, 1, 0],
    [0, 1, 0, 1, 0, 1],
], dtype=bool)
FITNESS = np.array([0.6, 0.5, 0.5])


def test_task_force_methods():
    greedy = select_task_force("greedy", SOLVED, 2, FITNESS)
    exact = select_task_force("exact", SOLVED, 2, FITNESS)
    assert greedy == [0, 1] and coverage(SOLVED[greedy]) == pytest.approx(5 / 6)
    assert exact == [1, 2] and coverage(SOLVED[exact]) == 1.0
    assert select_task_force("top-fitness", SOLVED, 2, FITNESS) == [0, 1]
    r1 = select_task_force("random", SOLVED, 2, FITNESS, seed=7)
    assert r1 == select_task_force("random", SOLVED, 2, FITNESS, seed=7) and len(set(r1)) == 2
    with pytest.raises(AcdcError, match="unknown task-force method 'best'"):
        select_task_force("best", SOLVED, 2, FITNESS)
    with pytest.raises(AcdcError, match="combinations exceed"):
        exact_task_force(np.zeros((60, 3), dtype=bool), 10)


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_run_with_each_archive(kind, tiny_config, tmp_path):
    config = tiny_config(**{"run.generations": 1, "tasks.initial_families": 4, "tasks.new_per_adaptation": 2,
                            "evolution.archive": kind, "evolution.grid_cells": 2,
                            "evolution.cvt_cells": 4, "result.task_force_method": "exact"})
    run_once(config, tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    archive = json.loads(db.execute("SELECT archive FROM generations WHERE generation=1").fetchone()[0])
    assert archive and all("score" in r and "capabilities" in r for r in archive)
    members = {r["id"] for r in archive}
    force = json.loads(db.execute("SELECT model_ids FROM task_force").fetchone()[0])
    assert force and set(force) <= members
    stats = json.loads(db.execute("SELECT stats FROM generations WHERE generation=1").fetchone()[0])
    assert 0 <= stats["model_diversity"] <= 1


def test_ablation_switches_static_pool_and_no_minimal_criterion(tiny_config, tmp_path):
    config = tiny_config(**{"run.generations": 2, "tasks.initial_families": 4, "tasks.static_pool": True, "evolution.minimal_criterion": False,
                            "evolution.mutation": "none"})
    run_once(config, tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    assert db.execute("SELECT MAX(generation) FROM tasks").fetchone()[0] == 0  # no task added after generation 0
    assert db.execute("SELECT COUNT(*) FROM models WHERE status='rejected'").fetchone()[0] == 0
    recipes = [json.loads(r[0]) for r in db.execute("SELECT recipe FROM models WHERE generation>0")]
    assert recipes and all(r.get("mutation") is None for r in recipes)


def test_map_elites_with_skill_vectors_is_refused_in_one_line(tiny_config):
    with pytest.raises(AcdcError, match="evolution: Value error, archive map-elites-grid needs descriptors"):
        tiny_config(**{"evolution.archive": "map-elites-grid", "evolution.descriptors": "skills"})
