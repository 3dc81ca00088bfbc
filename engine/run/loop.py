"""The coevolution algorithm (AC/DC), readable from :meth:`Coevolution.run` down.

Models evolve by pyribs ask/tell on a DNS archive; tasks evolve by periodic
adaptation of the active pool. Everything a generation does is gathered in a
:class:`~acdc_engine.store.Commit` and written at its end in one transaction;
a resumed run rebuilds this object's state from the store. The tasks and
their statuses are kept by a :class:`~acdc_engine.run.task_pool.TaskPool`, the models
and their weight files by a :class:`~acdc_engine.run.population.Population`, answers
and scores by an :class:`~acdc_engine.run.evaluator.Evaluator`; a
:class:`~acdc_engine.run.ledger.Ledger` settles each commit and restores them all.
"""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
from ribs.schedulers import Scheduler

from acdc_engine.archives import (
    coverage, greedy_task_force, make_archive, make_emitter, plan_adaptation, select_task_force,
)
from ..config import Config
from ..events import (Advanced, Event, GenerationCommitted, GenerationStarted, ModelDone, RunFinished,
                      RunStarted, StepStarted, TaskRejected, WeightsEvicted)
from .executor import MaterialiseJob, Operators, Worker, make_executor
from ..models.lineage import rebuild_weights
from .evaluator import Evaluator
from .intake import TaskIntake
from ..models.layer_blocks import checkpoint_layers
from .ledger import Ledger
from .task_pool import TaskPool
from .population import Population
from ..recipe import Recipe
from ..models.seed_resolution import resolve_seeds
from .statistics import Statistics
from ..store import Commit, RunStore
from ..tasks import TaskRequest, TaskSpec
from .timing import PhaseClock
from .weight_cache import WeightCache

SALT_EMIT, SALT_ADAPT, SALT_TASKS, SALT_FORCE = 1, 2, 3, 4


def _report_plots(run_dir) -> list[tuple[str, str, str]]:
    """The report's plots of a run folder (matplotlib is imported here, when a plugin asks for them)."""
    from ..ui.report import report_plots

    return report_plots(run_dir)


class RunInterrupted(Exception):
    """A stop was requested (Ctrl-C); the run stopped at the end of a batch or between two steps."""


class Coevolution:
    """One AC/DC run over a run store, with the plugins of a configured
    :class:`~acdc_engine.plugin_manager.PluginContext` (whoever opened it closes it)."""

    def __init__(self, config: Config, store: RunStore, plugins) -> None:
        self.cfg, self.store, self.hook = config, store, plugins.hook
        evo = config.evolution
        ops = Operators(self.hook, evo)
        self.merge, self.mutation = ops.merge, ops.mutation
        self.seed_dirs, self.base_dir = resolve_seeds(self.hook, config.models)
        self.archive = make_archive(
            evo.archive, capacity=evo.archive_size, measure_dim=len(evo.capability_axes) or config.tasks.active_cap,
            k_neighbors=evo.dns_k, grid_cells=evo.grid_cells, cvt_cells=evo.cvt_cells, seed=config.run.seed,
        )
        self.emitter = make_emitter(
            evo.emitter, self.archive, batch_size=evo.offspring_per_generation, merge=self.merge,
            mutation=self.mutation, config=config, seed=config.run.seed,
            num_layers=checkpoint_layers(self.base_dir / "model.safetensors") if evo.emitter == "cma-es" else 0,
        )
        self.scheduler = Scheduler(self.archive, [self.emitter], add_mode="batch")
        self.pool = TaskPool(emit=self.emit)
        self.intake = TaskIntake(hook=self.hook, pool=self.pool, limits=config.sandbox, emit=self.emit)
        self.executor = make_executor(config, Worker(config=config, hook=self.hook, base_dir=self.base_dir,
                                                     operators=ops), self.emit)
        rebuild = partial(rebuild_weights, store, hook=self.hook, base_file=self.base_dir / "model.safetensors",
                          seed_files={spec: d / "model.safetensors" for spec, d in self.seed_dirs.items()},
                          on_damaged=lambda *damaged: self.weight_cache.damaged(*damaged))
        self.weight_cache = WeightCache(store, budget_mb=config.store.weights_budget_mb, rebuild=rebuild,
                                        emit=self.emit, keep_reads=config.store.keep_next_reads)
        self.population = Population(store=store, weight_cache=self.weight_cache, base_dir=self.base_dir,
                                     seed_dirs=self.seed_dirs)
        self.clock = PhaseClock()
        self.evaluator = Evaluator(config=config, store=store, hook=self.hook, executor=self.executor, pool=self.pool,
                                   population=self.population, clock=self.clock, step=self.step, emit=self.emit)
        self.statistics = Statistics(archive=self.archive, evaluator=self.evaluator, pool=self.pool, hook=self.hook,
                                     clock=self.clock)
        self.ledger = Ledger(store=store, population=self.population, evaluator=self.evaluator, pool=self.pool,
                             archive=self.archive, emitter=self.emitter, weight_cache=self.weight_cache,
                             statistics=self.statistics)
        self.stop_requested = False
        self.current_step = "the start"
        self.evaluating = ""  # which models an evaluate/score step is for (shown by the view)

    # --- the algorithm ------------------------------------------------------

    def run(self) -> None:
        """Runs (or resumes) every generation, then picks the task force."""
        start = self.restore()
        committed = [{"generation": s["gen"], "archive": self.store.generation(s["gen"])["archive"], "stats": s}
                     for s in self.store.all_stats()] if start > 0 else []
        self.emit(RunStarted(run_dir=str(self.store.run_dir), generations=self.cfg.run.generations,
                             start_generation=start, committed=committed))
        for gen in range(start, self.cfg.run.generations + 1):
            self.emit(GenerationStarted(generation=gen))
            self.clock.restart("other")
            commit = Commit(generation=gen)
            if gen == 0:
                self.step("adapt tasks", 1, gen)
                self.intake.add([TaskRequest("initial", self.cfg.tasks.initial_families, self.rng_seed(0, SALT_TASKS),
                                            self.cfg.tasks.instances_per_family)], gen, commit)
                self.add_seeds(commit)
                breed = self.cfg.evolution.initial_population - len(self.seed_dirs)
            else:
                breed = self.cfg.evolution.offspring_per_generation
            if breed > 0:
                self.breed(gen, breed, commit)
            if gen > 0 and gen % self.cfg.tasks.adapt_every == 0 and not self.cfg.tasks.static_pool:
                self.adapt_tasks(gen, commit)
            self.checkpoint(commit)
        if self.store.task_force() is None:
            self.pick_task_force()
        else:
            self.trim_weights()

    def breed(self, gen: int, n: int, commit: Commit) -> None:
        """ask -> materialise -> evaluate -> score -> minimal criterion -> tell."""
        self.emitter.batch_size = n
        self.emitter.reseed(self.rng_seed(gen, SALT_EMIT))
        recipes = self.scheduler.ask()
        children = [self.population.add(r, gen, commit) for r in recipes]
        self.evaluating = "children"
        self.step("materialise", len(children), gen)
        self.executor.materialise([MaterialiseJob(c.recipe, [self.population.weights_file(p) for p in c.recipe.parents],
                                                  c.new_file) for c in children])
        ids = [c.id for c in children]
        responses = self.evaluator.answer(ids, self.pool.active, gen)
        self.drop_broken(self.evaluator.score(responses, gen, commit), commit)
        self.step("select", 1, gen)
        reasons = {m: self.criterion(responses[m]) if self.cfg.evolution.minimal_criterion else None for m in ids}
        for model_id, reason in reasons.items():
            self.population[model_id].reason = reason
        viable = np.array([reasons[m] is None for m in ids])
        objectives, measures = self.evaluator.measure(ids)
        commit.breeding = self.statistics.breeding(children, viable, objectives)
        self.scheduler.tell(objectives, measures, model_id=np.array(ids + [None], dtype=object)[:-1], viable=viable)
        for model_id, ok, fit in zip(ids, viable, objectives):
            self.emit(ModelDone(model_id=model_id, fitness=float(fit), solved=self.evaluator.solved_count(model_id),
                                status="evaluated" if ok else "rejected", reason=reasons[model_id]))
        self.emit(Advanced(n=1))

    def adapt_tasks(self, gen: int, commit: Commit) -> None:
        """Pass rates over the archive decide: remove, harder variant, novel variant."""
        members = self.archive.member_ids()
        threshold = self.cfg.tasks.pass_threshold
        rates = {t: float(np.mean([self.evaluator.scores.get((m, t), 0) >= threshold for m in members])) for t in self.pool.active}
        plan = plan_adaptation(rates, n_new=self.cfg.tasks.new_per_adaptation,
                               rng=np.random.default_rng(self.rng_seed(gen, SALT_ADAPT)))
        self.step("adapt tasks", len(plan.harder) + len(plan.novel) or 1, gen)  # one per request below
        too_hard = self.pool.settle_limbo(rates, commit)
        for task_id in plan.remove:
            reason = "too hard: solved by no archive member; parent restored" if task_id in too_hard else \
                "impossible: solved by no archive member"
            self.pool.set_status(task_id, "removed", reason, commit)
        seed = self.rng_seed(gen, SALT_TASKS)
        inst = self.cfg.tasks.instances_per_family
        requests = [TaskRequest(mode, 1, seed + i, inst, self.pool[t].spec, t, self.inspiration(seed + i))
                    for i, (mode, t) in enumerate([("harder", t) for t in plan.harder] + [("novel", t) for t in plan.novel])]
        if not requests:  # nobody solves anything: start afresh rather than empty the pool
            requests = [TaskRequest("initial", self.cfg.tasks.new_per_adaptation, seed, inst,
                                    inspiration=self.inspiration(seed))]
        self.intake.add(requests, gen, commit)
        self.pool.prune(self.cfg.tasks.active_cap, commit)
        self.evaluating = "members on new tasks"
        self.drop_broken(self.evaluator.evaluate_missing(members, gen, commit), commit)
        self.remeasure()

    def trim_weights(self) -> None:
        """After the task force nothing is read any more: the kept files back within the budget."""
        evicted = self.ledger.trim()
        if evicted:
            self.emit(WeightsEvicted(generation=self.cfg.run.generations, model_ids=evicted))

    def checkpoint(self, commit: Commit) -> None:
        """Settles the generation's commit (statuses, weight files, archive, statistics) and writes it."""
        self.step("checkpoint", 1, commit.generation)
        evicted = self.ledger.settle(commit, reads=self.next_reads(commit.generation))
        self.store.commit(commit)
        self.ledger.committed(commit)
        if evicted:
            self.emit(WeightsEvicted(generation=commit.generation, model_ids=evicted))
        self.emit(Advanced(n=1))
        self.emit(GenerationCommitted(generation=commit.generation, archive=commit.archive,
                                      pool=self.pool.counts(), stats=commit.stats))

    def pick_task_force(self) -> None:
        """A task force (``result.task_force_method``) over every accepted task (or each of its instances:
        ``result.task_force_units``), beside the seed experts' own task force of the same size (greedy over the
        seeds alone)."""
        members = self.archive.member_ids()
        seeds = [m.id for m in self.population.seeds()]
        everything = self.pool.accepted()
        commit = Commit(generation=self.cfg.run.generations)
        self.evaluating = "task force"
        for model_id in dict.fromkeys(members + seeds):
            todo = [t for t in everything if (model_id, t) not in self.evaluator.scores]
            if todo:
                self.drop_broken(self.evaluator.evaluate([model_id], todo, commit.generation, commit), commit)
        everything = [t for t in everything if self.pool[t].status != "broken"]
        size = self.cfg.result.task_force_size
        per_instance, threshold = self.cfg.result.task_force_units == "instances", self.cfg.tasks.pass_threshold
        member_scores, seed_scores = (self.evaluator.score_matrix(ids, everything, per_instance=per_instance)
                                      for ids in (members, seeds))
        picks = select_task_force(self.cfg.result.task_force_method, member_scores >= threshold, size,
                                  np.array([self.evaluator.fitness(m) for m in members]), scores=member_scores,
                                  seed=self.rng_seed(commit.generation, SALT_FORCE))
        force = [members[i] for i in picks]
        seed_force = [seeds[i] for i in greedy_task_force(seed_scores >= threshold, size,
                                                          np.array([self.evaluator.fitness(m) for m in seeds]),
                                                          seed_scores)]
        cov = coverage(self.evaluator.solved_matrix(force, everything))
        seed_cov = coverage(self.evaluator.solved_matrix(seed_force, everything))
        self.store.save_task_force(force, cov, seed_cov, len(everything), commit.evaluations, seed_force=seed_force)
        self.trim_weights()
        self.emit(RunFinished(run_dir=str(self.store.run_dir), task_force=force, coverage=cov,
                              seed_coverage=seed_cov, seed_force=seed_force, n_tasks=len(everything),
                              seed_specs=[self.population[m].recipe.seed_spec for m in seed_force],
                              plots=partial(_report_plots, self.store.run_dir)))

    # --- models ---------------------------------------------------------------

    def next_reads(self, gen: int) -> set[str]:
        """The archive members whose weights the step after generation ``gen`` reads: generation
        ``gen + 1``'s parents, and every member when it adapts the tasks (its members answer the new
        tasks); after the last generation, the members the task force still evaluates."""
        members = self.archive.member_ids()
        if gen >= self.cfg.run.generations:
            accepted = self.pool.accepted()
            return {m for m in members if any((m, t) not in self.evaluator.scores for t in accepted)}
        if (gen + 1) % self.cfg.tasks.adapt_every == 0 and not self.cfg.tasks.static_pool:
            return set(members)
        return set(self.next_parents(gen + 1))

    def next_parents(self, gen: int) -> list[str]:
        """The parents generation ``gen`` will ask for: its ask, made now on a copy of the emitter (reseeded
        as :meth:`breed` reseeds it; the archive, operators and config shared, read only), so the run itself
        draws nothing. Every member where the emitter cannot be copied."""
        shared = {id(o): o for o in (self.archive, self.merge, self.mutation, self.cfg)}
        try:
            probe = copy.copy(self.emitter)
            probe.__dict__.update(copy.deepcopy(vars(self.emitter), shared))
            probe.batch_size = self.cfg.evolution.offspring_per_generation
            probe.reseed(self.rng_seed(gen, SALT_EMIT))
            return [p for recipe in probe.ask() for p in recipe.parents]
        except Exception:  # noqa: BLE001 - a third-party emitter: keep every member rather than guess
            return self.archive.member_ids()

    def add_seeds(self, commit: Commit) -> None:
        seeds = [self.population.add(Recipe(seed_spec=spec), 0, commit, weights=d / "model.safetensors")
                 for spec, d in self.seed_dirs.items()]
        self.evaluating = "seeds"
        self.drop_broken(self.evaluator.evaluate([s.id for s in seeds], self.pool.active, 0, commit), commit)
        ids = [s.id for s in seeds]
        objectives, measures = self.evaluator.measure(ids)
        self.archive.add(np.array([s.recipe for s in seeds] + [None], dtype=object)[:-1], objectives, measures,
                         model_id=np.array(ids + [None], dtype=object)[:-1], viable=np.ones(len(ids), dtype=bool))

    def criterion(self, responses: dict[str, list[str]]) -> str | None:
        flat = [r for texts in responses.values() for r in texts]
        return next((r for r in self.hook.acdc_minimal_criterion(responses=flat) if r), None)

    def remeasure(self) -> None:
        """Re-measures every archive member on the current active pool."""
        members = self.archive.member_ids()
        objectives, measures = self.evaluator.measure(members)
        self.archive.rebuild([self.population[m].recipe for m in members], members, objectives, measures)

    # --- tasks ----------------------------------------------------------------

    def inspiration(self, seed: int) -> tuple[TaskSpec, ...]:
        """A few random active tasks, shown to generators as inspiration."""
        return self.pool.inspiration(self.cfg.tasks.inspirations, seed)

    def drop_broken(self, broken: dict[str, str], commit: Commit) -> None:
        """Takes the tasks whose ``score()`` failed (what scoring returned, with why) out of the pool, tells
        of each, and re-measures the archive without them."""
        for task_id, reason in broken.items():
            self.pool.set_status(task_id, "broken", reason, commit)
            self.emit(TaskRejected(name=self.pool[task_id].spec.name, reason=reason, pool=self.pool.counts()))
        if broken:
            self.remeasure()

    # --- bookkeeping ----------------------------------------------------------

    def restore(self) -> int:
        """Rebuilds state from the store; returns the next generation to run."""
        return self.ledger.restore(self.cfg.models.seeds)

    def rng_seed(self, gen: int, salt: int) -> int:
        return int(np.random.SeedSequence([self.cfg.run.seed, gen, salt]).generate_state(1)[0])

    def step(self, name: str, total: int, gen: int) -> None:
        """Starts a step; a requested stop takes effect here, between steps."""
        if self.stop_requested:
            raise RunInterrupted(f"stopped before {name} of generation {gen}")
        self.clock.switch("generate" if name == "evaluate" else name)
        self.current_step = f"{name} of generation {gen}"
        self.emit(StepStarted(name=name, total=total, generation=gen,
                              what=self.evaluating if name in ("evaluate", "score") else ""))

    def emit(self, event: Event) -> None:
        """Tells the plugins of an event; a requested stop takes effect at the next ``Advanced`` (the end of a
        batch), where nothing uncommitted is worth more than the batch just done (answers are kept per model)."""
        self.hook.acdc_event(event=event, kind=event.kind, data=event.data)
        if isinstance(event, Advanced) and self.stop_requested:
            raise RunInterrupted(f"stopped during {self.current_step}")

    def close(self) -> None:
        """Releases the executor (its backends and workers); the plugins stay configured until their context
        closes."""
        self.executor.close()

