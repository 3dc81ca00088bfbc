"""A generation's statistics: the logbook record of the archive, the task pool, the children and the clock.

:meth:`Statistics.record` is what a commit stores as its ``stats`` (and what ``status``, the report and
the live view read): the archive's fitness, Coverage and diversity, the pool's counts and diversity, the
shares of children that are viable and match their parents (:meth:`Statistics.breeding`), and the time of
each phase. They are kept in a DEAP logbook, rebuilt from the store on resume.
"""

from __future__ import annotations

import time

import numpy as np
from deap import tools

from acdc_engine.archives import coverage, vendi_score
from .population import ModelRecord
from ..store import Commit


class Statistics:
    """The run's logbook: one record per committed generation."""

    def __init__(self, *, archive, evaluator, pool, hook, clock) -> None:
        self.archive, self.evaluator, self.pool, self.hook, self.clock = archive, evaluator, pool, hook, clock
        self.logbook = tools.Logbook()
        self.started = time.monotonic()

    def breeding(self, children: list[ModelRecord], viable: np.ndarray, objectives: np.ndarray) -> dict[str, float]:
        """How good a generation's children are: the share that pass the minimal criterion, and the
        shares whose fitness matches or beats their weaker and their fitter parent (on the same tasks)."""
        parents = [[self.evaluator.fitness(p) for p in c.recipe.parents] for c in children]
        return {
            "children_viable": float(np.mean(viable)),
            "children_ge_parent": float(np.mean([f >= min(p) for f, p in zip(objectives, parents)])),
            "children_ge_best_parent": float(np.mean([f >= max(p) for f, p in zip(objectives, parents)])),
        }

    def record(self, commit: Commit, **extra) -> dict:
        """The generation's statistics (archive, pool, timings and ``extra``), recorded in the logbook."""
        members = self.archive.member_ids()
        fit = np.array([self.archive.member_objectives()[m] for m in members])
        skills = self.evaluator.solved_matrix(members, self.pool.active)
        record = {
            "gen": commit.generation, "elites": len(members), "fit_max": float(np.max(fit)),
            "fit_mean": float(np.mean(fit)), "fit_min": float(np.min(fit)),
            "coverage": coverage(skills),
            "model_diversity": model_diversity(skills),
            "born": len(commit.models), "rejected_models": sum(r.status == "rejected" for r in commit.models),
            "new_tasks": sum(r.status == "active" for r in commit.tasks),
            "rejected_tasks": sum(r.status == "rejected" for r in commit.tasks),
            "task_diversity": self.task_diversity(),
            **{f"pool_{k}": v for k, v in self.pool.counts().items()},
            "elapsed_s": round(time.monotonic() - self.started, 1),
            **extra,
            **self.clock.record(),
        }
        self.logbook.record(**record)
        return record

    def task_diversity(self) -> float | None:
        """Vendi score of the active pool's description embeddings (``None`` without an embedding plugin)."""
        texts = [self.pool[t].spec.description for t in self.pool.active]
        embeddings = self.hook.acdc_task_embeddings(texts=texts) if texts else None
        return None if embeddings is None else round(vendi_score(embeddings), 4)

    def restore(self, records: list[dict]) -> None:
        """The logbook as committed (the store's statistics, oldest first)."""
        for record in records:
            self.logbook.record(**record)


def model_diversity(skills: np.ndarray) -> float:
    """Mean pairwise share of tasks on which two members differ (0 for fewer than two)."""
    skills = np.asarray(skills, dtype=bool)
    n = len(skills)
    if n < 2 or skills.shape[1] == 0:
        return 0.0
    differ = (skills[:, None, :] != skills[None, :, :]).mean(axis=-1)
    return float(differ[np.triu_indices(n, 1)].mean())
