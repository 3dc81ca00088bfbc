"""The whole loop on tiny models: real plugins, real sandbox, real SQLite."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from acdc_engine.evaluation.discovery_measure import run_skills
from acdc_engine.errors import AcdcError
from acdc_engine.evaluation.systems import stored_task_force
from acdc_engine.hookspecs import hookimpl
from acdc_engine.run.loop import Coevolution
from acdc_engine.plugin_manager import PluginContext, build_plugin_manager
from acdc_engine.recipe import Recipe
from acdc_engine.store import RunStore
from acdc_engine.tasks import TaskSpec
from conftest import run_in_process


run_once = run_in_process


class EventLog:
    def __init__(self):
        self.events = []

    @hookimpl
    def acdc_event(self, kind, data):
        self.events.append((kind, data))


def test_tiny_run_commits_every_generation_and_a_task_force(tiny_config, tmp_path):
    config = tiny_config()
    log = EventLog()
    run_once(config, tmp_path / "run", [log])
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    assert [r[0] for r in db.execute("SELECT generation FROM generations ORDER BY 1")] == [0, 1, 2]
    n_models = db.execute("SELECT COUNT(*) FROM models").fetchone()[0]
    assert n_models == 3 + 2 + 2  # initial population, then two offspring per generation
    archive = json.loads(db.execute("SELECT archive FROM generations WHERE generation=2").fetchone()[0])
    assert 1 <= len(archive) <= 3
    # only archive members and seeds keep weight files, named by their content digest
    files = {p.stem for p in (tmp_path / "run" / "weights").glob("*.safetensors")}
    kept = {r[0] for r in db.execute("SELECT digest FROM models WHERE id IN (%s) OR parents = '[]'"
                                     % ",".join("?" * len(archive)), [r["id"] for r in archive])}
    assert files == kept == {r[0] for r in db.execute("SELECT digest FROM weight_files")}
    force = db.execute("SELECT model_ids, coverage, n_tasks FROM task_force").fetchone()
    assert force is not None and 0 <= force[1] <= 1 and force[2] >= 6
    # adaptation ran (adapt_every=1) and the pool stayed within its cap
    active = json.loads(db.execute("SELECT active FROM generations WHERE generation=2").fetchone()[0])
    assert len(active) <= 8
    kinds = [k for k, _ in log.events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    steps = {d["name"] for k, d in log.events if k == "step"}
    assert {"materialise", "evaluate", "score", "select", "adapt tasks", "checkpoint"} <= steps
    # the pool's counts travel with the events that change them, so the view's tasks line is never a commit
    # behind: each generation's added tasks are counted before that generation commits
    committed, fresh = None, 0
    for kind, data in log.events:
        if kind == "generation_committed":
            committed = data["pool"]
        elif kind == "tasks_added" and committed is not None:
            assert data["pool"]["accepted"] >= committed["accepted"] + len(data["accepted"])
            fresh += 1
    assert fresh >= 2


def test_task_force_over_instances_uses_every_instance_score_kept_in_the_store(tiny_config, tmp_path):
    config = tiny_config(**{"run.generations": 1, "tasks.instances_per_family": 3,
                            "result.task_force_units": "instances", "result.task_force_size": 2})
    store = RunStore.create(tmp_path / "run", config.model_dump_json())
    context = PluginContext(config).open()
    evo = Coevolution(config, store, context)
    try:
        evo.run()
        stored = store.instance_scores()
        assert stored == evo.evaluator.instance_scores and len(stored) == len(store.scores())
        assert all(len(v) == 3 and np.mean(v) == pytest.approx(store.scores()[k]) for k, v in stored.items())
        _, units, scores, _ = run_skills(store, "instances")  # as the discovery benchmark reads them
        assert {(m, f"{t}#{k}"): v for (m, t), vs in stored.items() for k, v in enumerate(vs)} == scores
        assert len(units) == 3 * sum(r["status"] in ("active", "limbo", "retired", "removed") for r in store.tasks())
        # three members: a and b answer instances 0 and 1 of every task (2/3: solved), c only instance 2 (1/3: no
        # task solved, and the least fit); a force of 2 over tasks takes a and b, over instances a and c
        a, b, c = evo.archive.member_ids()[:3]
        tasks = [t for t in evo.pool.accepted() if evo.pool[t].status != "broken"]
        for m, values in ((a, [1.0, 1.0, 0.0]), (b, [1.0, 1.0, 0.0]), (c, [0.0, 0.0, 1.0])):
            for t in tasks:
                evo.evaluator.instance_scores[(m, t)], evo.evaluator.scores[(m, t)] = values, float(np.mean(values))
        evo.pick_task_force()
        assert sorted(json.loads(store.task_force()["model_ids"])) == sorted([a, c])
        evo.cfg = evo.cfg.model_copy(update={"result": evo.cfg.result.model_copy(update={"task_force_units": "tasks"})})
        evo.pick_task_force()
        assert sorted(json.loads(store.task_force()["model_ids"])) == sorted([a, b])
    finally:
        evo.close()
        context.close()
        store.close()
    resumed = run_once(config, tmp_path / "run", resume=True)  # restored from the store on resume
    assert resumed.evaluator.instance_scores == stored


def test_evaluate_method_reselects_over_the_units_the_run_names(tiny_config, tmp_path, monkeypatch):
    config = tiny_config(**{"run.generations": 1, "tasks.instances_per_family": 3, "evolution.archive_size": 20,
                            "evolution.offspring_per_generation": 4, "evolution.minimal_criterion": False,
                            "result.task_force_units": "instances", "result.task_force_size": 2})
    run_once(config, tmp_path / "run")
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:  # crafted as above, in the SQLite file itself
        children = [i for i, recipe in db.execute("SELECT id, recipe FROM models WHERE status = 'elite'")
                    if not Recipe.from_json(recipe).is_seed]
        assert len(children) >= 3
        # a and b answer instances 0 and 1 of every task, c only instance 2, every other model nothing
        crafted = {children[0]: [1.0, 1.0, 0.0], children[1]: [1.0, 1.0, 0.0], children[2]: [0.0, 0.0, 1.0]}
        for model_id, task_id, answers in db.execute("SELECT model_id, task_id, answers FROM evaluations").fetchall():
            values = crafted.get(model_id, [0.0, 0.0, 0.0])
            answers = [dict(a, score=v) for a, v in zip(json.loads(answers), values)]
            db.execute("UPDATE evaluations SET score = ?, answers = ? WHERE model_id = ? AND task_id = ?",
                       (float(np.mean(values)), json.dumps(answers), model_id, task_id))
    db.close()
    store = RunStore.open(tmp_path / "run")
    try:
        assert sorted(stored_task_force(store, "greedy", 2, 0)) == sorted([children[0], children[2]])
        over_tasks = config.model_copy(
            update={"result": config.result.model_copy(update={"task_force_units": "tasks"})})
        monkeypatch.setattr(store, "config", lambda: over_tasks)
        assert sorted(stored_task_force(store, "greedy", 2, 0)) == sorted(children[:2])
    finally:
        store.close()


def test_evaluate_method_reselects_over_the_tasks_the_run_accepted_limbo_included(tiny_config, tmp_path):
    config = tiny_config(**{"run.generations": 1, "evolution.archive_size": 20, "evolution.minimal_criterion": False,
                            "evolution.offspring_per_generation": 4, "result.task_force_size": 2})
    run_once(config, tmp_path / "run")
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        children = [i for i, recipe in db.execute("SELECT id, recipe FROM models WHERE status = 'elite'")
                    if not Recipe.from_json(recipe).is_seed]
        tasks = [t for (t,) in db.execute("SELECT id FROM tasks WHERE status = 'active' ORDER BY id")]
        assert len(children) >= 3 and len(tasks) >= 2
        held = tasks[0]  # held in limbo: still accepted, as the run's own pick counts it
        db.execute("UPDATE tasks SET status = 'limbo' WHERE id = ?", (held,))
        # a and b solve every task but the held one, c only the held one: a force of 2 is a and c only
        # when the held task counts (otherwise b, as fit as a, is taken)
        solved = {children[0]: set(tasks[1:]), children[1]: set(tasks[1:]), children[2]: {held}}
        for model_id, task_id in db.execute("SELECT model_id, task_id FROM evaluations").fetchall():
            db.execute("UPDATE evaluations SET score = ? WHERE model_id = ? AND task_id = ?",
                       (1.0 if task_id in solved.get(model_id, ()) else 0.0, model_id, task_id))
    db.close()
    store = RunStore.open(tmp_path / "run")
    try:
        assert sorted(stored_task_force(store, "greedy", 2, 0)) == sorted([children[0], children[2]])
    finally:
        store.close()


def test_same_seed_gives_same_run(tiny_config, tmp_path):
    a = run_once(tiny_config(**{"run.generations": 1}), tmp_path / "a")
    b = run_once(tiny_config(**{"run.generations": 1}), tmp_path / "b")
    assert {m: r.recipe for m, r in a.population.records.items()} == {m: r.recipe for m, r in b.population.records.items()}
    assert a.evaluator.scores == b.evaluator.scores


def test_seeds_of_different_architectures_are_refused(tiny_config, tiny_models):
    config = tiny_config(**{"models.seeds": [str(tiny_models["a"]), str(tiny_models["wide"])]})
    with pytest.raises(AcdcError, match="hidden_size 64 vs 96"):
        Coevolution(config, None, build_plugin_manager(["merge", "taskgen"]))


def test_missing_seed_path_is_named(tiny_config, tmp_path):
    config = tiny_config(**{"models.seeds": [str(tmp_path / "nowhere")]})
    with pytest.raises(AcdcError, match=r"seed model path .*nowhere does not exist"):
        Coevolution(config, None, build_plugin_manager(["merge", "taskgen"]))


BAD_SCORES = {
    "raises": "raise ValueError('bad task')",
    "hangs": "while True: pass",
    "eats-memory": "x = bytearray(1 << 34)",
}


def bad_family(body: str) -> str:
    return (
        "class TaskFamily:\n"
        "    @staticmethod\n    def get_tasks():\n        return {'1': {'q': 1}}\n"
        "    @staticmethod\n    def get_instructions(t):\n        return 'Say 1. Answer: <n>'\n"
        "    @staticmethod\n    def score(t, submission):\n"
        "        if submission == '':\n            return 0.0\n"
        f"        {body}\n"
    )


class BadTasks:
    """Adds families whose score() misbehaves only on real answers (not at acceptance)."""

    @hookimpl
    def acdc_generate_tasks(self, request):
        if request.mode != "initial":
            return None
        return [TaskSpec(f"bad-{name}", f"a task that {name}", "broken", 1, bad_family(body), "bad")
                for name, body in BAD_SCORES.items()]


def test_tasks_whose_score_raises_hangs_or_eats_memory_are_marked_broken(tiny_config, tmp_path):
    config = tiny_config(**{"run.generations": 1, "tasks.initial_families": 6, "sandbox.timeout_s": 2.0})
    run_once(config, tmp_path / "run", [BadTasks()])
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    rows = {r[0]: (r[1], r[2]) for r in db.execute("SELECT name, status, reason FROM tasks WHERE generator='bad'")}
    assert rows["bad-raises"][0] == "broken" and "ValueError: bad task" in rows["bad-raises"][1]
    assert rows["bad-hangs"][0] == "broken" and "timed out" in rows["bad-hangs"][1]
    assert rows["bad-eats-memory"][0] == "broken" and "MemoryError" in rows["bad-eats-memory"][1]
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 1  # the run went on
