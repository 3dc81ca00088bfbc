"""The ledger: the loop's state written into one generation's :class:`~acdc_engine.store.Commit`, and read
back from the store when a run resumes.

Everything a commit holds besides the rows the collaborators add as they go (new models, tasks and
evaluations) is settled here at a generation's end: each model's status and fitness, the archive's
rows, the active pool, the weight files kept, the emitter's state and the generation's statistics
(recorded by :class:`~acdc_engine.run.statistics.Statistics`).
:meth:`Ledger.restore` is the inverse: from the store's last commit it has the population, the
task pool and the evaluator restore their records, then rebuilds the archive, the emitter and the
statistics' logbook.
"""

from __future__ import annotations

import json

from ..digest import file_digest
from ..records import ArchiveRow, ModelRow
from .statistics import Statistics
from ..store import Commit


class Ledger:
    """Settles each generation's commit from the run's collaborators and restores them from the store."""

    def __init__(self, *, store, population, evaluator, pool, archive, emitter, weight_cache,
                 statistics: Statistics) -> None:
        self.store, self.population, self.evaluator, self.pool = store, population, evaluator, pool
        self.archive, self.emitter, self.weight_cache, self.statistics = archive, emitter, weight_cache, statistics
        self.previous_members: set[str] = set()  # the archive at the last commit

    def settle(self, commit: Commit, reads: set[str] = frozenset()) -> list[str]:
        """Fills the rest of ``commit`` (statuses, weight files, archive, active pool, emitter state,
        statistics); returns the models whose weight files the cache evicted. ``reads``: the models whose
        weights the next generation reads (evicted last; see :mod:`~acdc_engine.run.weight_cache`)."""
        members = self.archive.member_ids()
        fitness = self.archive.member_objectives()
        new_ids = set(commit.born)
        commit.models = []
        for model_id in commit.born:
            model = self.population[model_id]
            model.content = model.content or file_digest(model.new_file)
            self.weight_cache.touch(model.content)
            status = "elite" if model_id in fitness else "rejected" if model.reason else "retired"
            commit.models.append(ModelRow(id=model_id, recipe=model.recipe.to_json(),
                                          parents=json.dumps(list(model.recipe.parents)), generation=model.generation,
                                          fitness=self.evaluator.fitness(model_id), status=status,
                                          reason=model.reason, digest=model.content))
        for model_id in self.previous_members - new_ids:
            if model_id in fitness:
                commit.model_updates.append((model_id, "elite", fitness[model_id]))
            else:
                commit.model_updates.append((model_id, "retired", self.evaluator.fitness(model_id)))
        seeds = self.population.seeds()
        kept = {m: self.population[m].content for m in members} | {m.id: m.content for m in seeds}
        commit.new_files = {self.population[m].content: self.population[m].new_file for m in new_ids
                            if self.population[m].content in kept.values()}
        rebuilt_s = round(self.weight_cache.rebuilt_s, 1)
        commit.weight_files, evicted, rebuilt = self.weight_cache.settle(
            kept, {m.content for m in seeds}, commit.new_files, reads={kept[m] for m in reads if m in kept})
        scores = self.archive.member_scores()
        commit.archive = [
            ArchiveRow(id=m, parents=list(self.population[m].recipe.parents) or [self.population[m].recipe.describe()],
                       fitness=fitness[m], solved=self.evaluator.solved_count(m), score=scores[m],
                       capabilities=self.evaluator.capability_rates(m))
            for m in sorted(members, key=lambda m: -fitness[m])
        ]
        commit.active = list(self.pool.active)
        commit.emitter_state = self.emitter.state()
        kept_mb = round(sum(r["size"] for r in commit.weight_files) / 2**20, 1)
        commit.stats = self.statistics.record(commit, weights_mb=kept_mb, weights_evicted=len(evicted),
                                         weights_rebuilt=rebuilt, weights_rebuilt_s=rebuilt_s, **commit.breeding)
        return evicted

    def trim(self) -> list[str]:
        """After the run (nothing is read any more): the kept files back within the budget, the next
        generation's reads included; returns the models whose files were evicted."""
        seeds = self.population.seeds()
        kept = {m: self.population[m].content for m in self.archive.member_ids()} | {m.id: m.content for m in seeds}
        rows, evicted, _ = self.weight_cache.settle(kept, {m.content for m in seeds}, {})
        if evicted:
            self.store.save_weight_files(rows)
        return evicted

    def committed(self, commit: Commit) -> None:
        """After the store wrote ``commit``: its new weight files are placed, its archive is the last one."""
        for model_id in commit.born:
            self.population[model_id].new_file = None
        self.previous_members = set(self.archive.member_ids())

    def restore(self, seed_specs: list[str]) -> int:
        """Rebuilds the collaborators from the store's last commit; returns the next generation to run."""
        last = self.store.last_generation()
        if last is None:
            return 0
        self.population.restore(self.store.models(), seed_specs)
        self.evaluator.scores = self.store.scores()
        self.evaluator.instance_scores = self.store.instance_scores()
        state = self.store.generation(last)
        self.pool.restore(self.store.tasks(), state["active"])
        members = [r.id for r in state["archive"]]
        self.previous_members = set(members)
        objectives, measures = self.evaluator.measure(members)
        self.archive.rebuild([self.population[m].recipe for m in members], members, objectives, measures)
        emitter_state = self.store.emitter_state(last)
        if emitter_state is not None:
            self.emitter.load_state(emitter_state)
        self.statistics.restore(self.store.all_stats())
        return last + 1

