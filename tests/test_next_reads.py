"""The weights budget keeps what the next generation reads: on a real tiny-model run whose budget forces
eviction, nothing evicted at a commit is rebuilt by the next generation (with ``store.keep_next_reads``),
while the strict budget has to rebuild some; both runs are the same run. The parents foreseen at a commit
are those the next generation asks for (recipe and CMA-ES emitters)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from acdc_engine.hookspecs import hookimpl
from acdc_engine.run.loop import Coevolution
from acdc_engine.store import RunStore
from conftest import run_in_process


class ByGeneration:
    """The models evicted at each commit, and those rebuilt during each generation (after the last commit:
    by the task force, counted as the generation after the last)."""

    def __init__(self):
        self.gen, self.evicted, self.rebuilt, self.seed_force = None, {}, {}, None

    @hookimpl
    def acdc_event(self, kind, data):
        if kind == "generation_committed":
            self.gen = data["generation"] + 1
        elif kind == "weights_evicted":
            self.evicted.setdefault(data["generation"], set()).update(data["model_ids"])
        elif kind == "weights_rebuilt":
            self.rebuilt.setdefault(self.gen, set()).add(data["model_id"])
        elif kind == "run_finished":
            self.seed_force = data["seed_force"]


def run(tiny_config, tmp_path, name, **extra):
    config = tiny_config(**{"run.generations": 4, "tasks.adapt_every": 2, "evolution.archive_size": 4,
                            "store.weights_budget_mb": 1, **extra})  # 1 MiB: below one child's file
    log = ByGeneration()
    run_in_process(config, tmp_path / name, [log])
    db = sqlite3.connect(tmp_path / name / "run.sqlite")
    try:
        stats = [json.loads(r[0]) for r in db.execute("SELECT stats FROM generations ORDER BY generation")]
        outcome = (db.execute("SELECT id, status, digest FROM models ORDER BY id").fetchall(),
                   db.execute("SELECT model_ids, coverage FROM task_force").fetchone())
        kept = db.execute("SELECT COALESCE(SUM(size), 0) FROM weight_files WHERE seed = 0").fetchone()[0]
        seeds = {r[0] for r in db.execute("SELECT id FROM models WHERE parents = '[]'")}
        store = RunStore.open(tmp_path / name)
        stored = store.seed_task_force()  # which seeds form the seed experts' task force
        store.close()
        assert stored == log.seed_force and stored and set(stored) <= seeds
    finally:
        db.close()
    return log, stats, outcome, kept


def test_the_next_generation_rebuilds_nothing_the_last_commit_evicted(tiny_config, tmp_path):
    log, stats, outcome, kept = run(tiny_config, tmp_path, "keep")
    during = {g: ids for g, ids in log.evicted.items() if g < 4}
    assert any(during.values()), log.evicted  # the budget forced evictions between generations
    for gen, ids in log.evicted.items():
        assert not ids & log.rebuilt.get(gen + 1, set()), (gen, ids, log.rebuilt)
    assert all("weights_rebuilt" in s and "weights_rebuilt_s" in s for s in stats)  # the time line's figures
    assert kept <= 2**20  # after the run the kept files are back within the budget

    strict_log, strict_stats, strict_outcome, _ = run(tiny_config, tmp_path, "strict",
                                                      **{"store.keep_next_reads": False})
    assert any(ids & strict_log.rebuilt.get(gen + 1, set()) for gen, ids in strict_log.evicted.items())
    assert sum(s["weights_rebuilt"] for s in strict_stats) > sum(s["weights_rebuilt"] for s in stats)
    assert strict_outcome == outcome  # the same models, statuses, weights and task force either way


@pytest.mark.parametrize("emitter", ["recipe", "cma-es"])
def test_the_parents_foreseen_at_a_commit_are_the_ones_the_next_generation_asks_for(emitter, tiny_config, tmp_path,
                                                                                  monkeypatch):
    foreseen, asked = {}, {}
    next_parents, breed = Coevolution.next_parents, Coevolution.breed

    def foresee(self, gen):
        foreseen[gen] = set(next_parents(self, gen))
        return foreseen[gen]

    def bred(self, gen, n, commit):
        breed(self, gen, n, commit)
        asked[gen] = {p for m in self.population.records.values() if m.generation == gen for p in m.recipe.parents}

    monkeypatch.setattr(Coevolution, "next_parents", foresee)
    monkeypatch.setattr(Coevolution, "breed", bred)
    run_in_process(tiny_config(**{"evolution.emitter": emitter, "tasks.static_pool": True, "run.generations": 3}),
                   tmp_path / "run")
    assert foreseen == {g: p for g, p in asked.items() if g > 0} and len(foreseen) == 3
