"""Evaluation: models answer task instances (from the answer cache where known), the tasks score them.

An :class:`Evaluator` asks the executor for the answers a model has not given
yet (cached at once in the store by the model's evaluation-cache key and the
decoding settings, so a crash loses none), scores them with each task's own
``score()`` in the sandbox, records each score in the generation's commit and
keeps every score of the run. Fitness, skill and capability views, and the
archive's measures, are read from those scores over the active pool.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection

import numpy as np

from ..answers import extract_answer
from ..config import Config
from ..digest import text_digest
from ..errors import AcdcError
from .executor import GenerateJob
from .task_pool import TaskPool
from ..records import EvaluationRow
from .population import Population
from ..store import Commit, RunStore
from ..tasks import TaskCodeError, checked_scores
from .timing import PhaseClock
from ..events import Advanced


class Evaluator:
    """Answers and scores of one run.

    ``step(name, total, gen)`` and ``emit(event)`` report progress. Scoring returns the tasks
    whose ``score()`` failed, with why; the caller takes them out of the pool.
    """

    def __init__(self, *, config: Config, store: RunStore, hook, executor, pool: TaskPool, population: Population,
                 clock: PhaseClock, step: Callable[..., None], emit: Callable[..., None]) -> None:
        self.cfg, self.store, self.hook, self.executor = config, store, hook, executor
        self.pool, self.population, self.clock = pool, population, clock
        self.step, self.emit = step, emit
        self.scores: dict[tuple[str, str], float] = {}
        self.instance_scores: dict[tuple[str, str], list[float]] = {}
        gen_cfg = config.generation
        self.decoding = text_digest(json.dumps({"backend": gen_cfg.backend, "dtype": gen_cfg.dtype,
                                                "max_new_tokens": gen_cfg.max_new_tokens}))

    def evaluate(self, model_ids: list[str], task_ids: list[str], gen: int, commit: Commit, *,
                 skip: Collection[str] = ()) -> dict[str, str]:
        """Answers and scores ``task_ids`` for ``model_ids``; returns the tasks that broke (see :meth:`score`)."""
        return self.score(self.answer(model_ids, task_ids, gen), gen, commit, skip=skip)

    def evaluate_missing(self, model_ids: list[str], gen: int, commit: Commit) -> dict[str, str]:
        """Scores each model on the active tasks it has no score for (new or restored tasks); returns the
        tasks that broke (see :meth:`score`)."""
        groups: dict[tuple[str, ...], list[str]] = {}
        for model_id in model_ids:
            todo = tuple(t for t in self.pool.active if (model_id, t) not in self.scores)
            if todo:
                groups.setdefault(todo, []).append(model_id)
        broken: dict[str, str] = {}
        for todo, ids in groups.items():
            broken |= self.evaluate(ids, list(todo), gen, commit, skip=broken)
        return broken

    def answer(self, model_ids: list[str], task_ids: list[str], gen: int) -> dict[str, dict[str, list[str]]]:
        """Every model's responses to every instance of ``task_ids``, from the cache where known."""
        flat = [(t, inst) for t in task_ids for inst in self.pool[t].instances]
        self.step("evaluate", len(flat) * len(model_ids), gen)
        keys = [text_digest(i.instruction) for _, i in flat]
        digests = self.population.digests
        known = {m: self.store.cached_answers(digests[m], self.decoding, list(dict.fromkeys(keys)))
                 for m in model_ids}
        todo = {m: {k: i.instruction for k, (_, i) in zip(keys, flat) if k not in known[m]} for m in model_ids}
        hits = sum(k in known[m] for m in model_ids for k in keys)
        self.clock.counts["answers_cached"] += hits
        self.emit(Advanced(n=hits))
        pending = [m for m in model_ids if todo[m]]

        def on_result(i: int, texts: list[str], tokens: int) -> None:
            model_id = pending[i]
            fresh = dict(zip(todo[model_id], texts))
            self.store.cache_answers(digests[model_id], self.decoding, fresh)  # at once: survives a crash
            known[model_id].update(fresh)
            self.clock.tokens += tokens
            self.clock.counts["answers_generated"] += len(texts)

        self.executor.generate([GenerateJob(self.population.weights_file(m), list(todo[m].values()))
                                for m in pending], on_result)
        out = {m: {t: [] for t in task_ids} for m in model_ids}
        for m in model_ids:
            for (t, _), k in zip(flat, keys):
                out[m][t].append(known[m][k])
        return out

    def score(self, responses: dict[str, dict[str, list[str]]], gen: int, commit: Commit, *,
              skip: Collection[str] = ()) -> dict[str, str]:
        """Scores responses with each task's own ``score()`` in the sandbox. Returns the tasks whose
        ``score()`` failed, each with why; from then on, as for ``skip`` and broken tasks, no one is
        scored on them."""
        self.step("score", sum(len(r) for r in responses.values()), gen)
        broken: dict[str, str] = {}
        for model_id, by_task in responses.items():
            for task_id, texts in by_task.items():
                task = self.pool[task_id]
                if task.status == "broken" or task_id in broken or task_id in skip:
                    continue
                subs = [extract_answer(t) for t in texts]
                try:
                    values = checked_scores(self.hook.acdc_score_submissions(
                        task=task.spec, instances=task.instances, submissions=subs, limits=self.cfg.sandbox),
                        len(subs))
                except TaskCodeError as exc:
                    broken[task_id] = f"score() failed: {exc}"
                    self.emit(Advanced(n=1))
                    continue
                self.scores[(model_id, task_id)] = float(np.mean(values))
                self.instance_scores[(model_id, task_id)] = values
                commit.evaluations.append(EvaluationRow(
                    model_id=model_id, task_id=task_id, score=float(np.mean(values)), generation=gen,
                    answers=json.dumps([{"response": r, "submission": s, "score": v}
                                        for r, s, v in zip(texts, subs, values)]),
                ))
                self.emit(Advanced(n=1))
        return broken

    def fitness(self, model_id: str) -> float:
        """Mean score over the active pool (0 when it is empty)."""
        active = self.pool.active
        return float(np.mean([self.scores.get((model_id, t), 0.0) for t in active])) if active else 0.0

    def score_matrix(self, model_ids: list[str], task_ids: list[str], *, per_instance: bool = False) -> np.ndarray:
        """Each model's score per task (0 where not scored); with ``per_instance``, its score per instance
        of each task instead (the columns task by task, in instance order)."""
        if not per_instance:
            return np.array([[self.scores.get((m, t), 0.0) for t in task_ids] for m in model_ids], dtype=float
                            ).reshape(len(model_ids), len(task_ids))
        widths = [len(self.pool[t].instances) for t in task_ids]
        return np.array([[v for t, w in zip(task_ids, widths) for v in self.instance_scores.get((m, t), [0.0] * w)]
                         for m in model_ids], dtype=float).reshape(len(model_ids), sum(widths))

    def solved_matrix(self, model_ids: list[str], task_ids: list[str], *, per_instance: bool = False) -> np.ndarray:
        """Whether each model's score per task (or per instance) reaches ``tasks.pass_threshold``."""
        return self.score_matrix(model_ids, task_ids, per_instance=per_instance) >= self.cfg.tasks.pass_threshold

    def capability_rates(self, model_id: str) -> dict[str, float]:
        """Share of active tasks solved, per capability."""
        by_cap: dict[str, list[bool]] = {}
        for t, ok in zip(self.pool.active, self.solved_matrix([model_id], self.pool.active)[0]):
            by_cap.setdefault(self.pool[t].spec.capability, []).append(bool(ok))
        return {c: float(np.mean(v)) for c, v in sorted(by_cap.items())}

    def measure(self, model_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The archive's view of models: objectives (fitness) and measures (the ``acdc_descriptors`` hook)."""
        evo, active = self.cfg.evolution, self.pool.active
        difficulty = np.array([self.pool[t].spec.difficulty for t in active], dtype=float)
        measures = self.hook.acdc_descriptors(
            skills=self.solved_matrix(model_ids, active), difficulty=difficulty,
            measure_dim=len(evo.capability_axes) or self.cfg.tasks.active_cap,
            capabilities=[self.pool[t].spec.capability for t in active], axes=evo.capability_axes,
            kind=evo.descriptor_kind,
        )
        if measures is None:
            raise AcdcError(f"no plugin provides descriptors of kind {evo.descriptor_kind!r}")
        return np.array([self.fitness(m) for m in model_ids]), measures

    def solved_count(self, model_id: str) -> int:
        """Active tasks the model solves."""
        return int(self.solved_matrix([model_id], self.pool.active).sum())
