"""Task forces: small sets of models chosen to cover the most tasks.

Four selection methods, selectable by name through :func:`select_task_force`:
``greedy`` (the AC/DC method), ``exact`` (every combination, for small
problems), and the baselines ``top-fitness`` and ``random`` (seeded).
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

from acdc_engine.errors import AcdcError

#: Most combinations :func:`exact_task_force` will enumerate.
EXACT_LIMIT = 200_000


def coverage(solved: np.ndarray) -> float:
    """Share of tasks (columns) solved by at least one model (row)."""
    solved = np.asarray(solved, dtype=bool)
    if solved.shape[1] == 0:
        return 0.0
    return float(solved.any(axis=0).mean()) if solved.shape[0] else 0.0


def greedy_task_force(solved: np.ndarray, size: int, fitness: np.ndarray | None = None,
                      scores: np.ndarray | None = None) -> list[int]:
    """Row indices of ``size`` models picked greedily for Coverage.

    Each step adds the model that solves the most still-uncovered tasks. Ties
    (and every step once Coverage stops growing) go to the model that raises
    the force's best per-task score the most (``scores``: each model's score
    per task, e.g. its pass rate over the task's instances), then to the
    fitter model (``fitness``), then to the lower index. Stops early when every
    model is in.
    """
    solved = np.asarray(solved, dtype=bool)
    fitness = np.zeros(len(solved)) if fitness is None else np.asarray(fitness, dtype=float)
    scores = np.zeros(solved.shape) if scores is None else np.asarray(scores, dtype=float).reshape(solved.shape)
    chosen: list[int] = []
    covered = np.zeros(solved.shape[1], dtype=bool)
    best_score = np.zeros(solved.shape[1])
    for _ in range(min(size, len(solved))):
        gains = (solved & ~covered).sum(axis=1)
        raises = np.clip(scores - best_score, 0.0, None).sum(axis=1)
        best = max((i for i in range(len(solved)) if i not in chosen),
                   key=lambda i: (gains[i], round(float(raises[i]), 9), fitness[i], -i))
        chosen.append(best)
        covered |= solved[best]
        best_score = np.maximum(best_score, scores[best])
    return chosen


def exact_task_force(solved: np.ndarray, size: int, fitness: np.ndarray | None = None) -> list[int]:
    """The ``size`` rows with the highest Coverage, by trying every combination.

    Ties go to the higher total fitness, then the first combination in
    lexicographic order. Refuses (``AcdcError``) more than
    :data:`EXACT_LIMIT` combinations.
    """
    solved = np.asarray(solved, dtype=bool)
    fitness = np.zeros(len(solved)) if fitness is None else np.asarray(fitness, dtype=float)
    size = min(size, len(solved))
    if comb(len(solved), size) > EXACT_LIMIT:
        raise AcdcError(f"exact task force: C({len(solved)}, {size}) combinations exceed {EXACT_LIMIT}; "
                        "use 'greedy'")
    best = max(combinations(range(len(solved)), size),
               key=lambda c: (int(solved[list(c)].any(axis=0).sum()), float(fitness[list(c)].sum())),
               default=())
    return list(best)


def top_fitness_task_force(solved: np.ndarray, size: int, fitness: np.ndarray | None = None) -> list[int]:
    """The ``size`` fittest rows (ties: lower index): the no-diversity baseline."""
    fitness = np.zeros(len(solved)) if fitness is None else np.asarray(fitness, dtype=float)
    return sorted(range(len(fitness)), key=lambda i: (-fitness[i], i))[: min(size, len(fitness))]


def random_task_force(solved: np.ndarray, size: int, fitness: np.ndarray | None = None, *,
                      seed: int | None = None) -> list[int]:
    """``size`` rows drawn uniformly without replacement: the chance baseline."""
    rng = np.random.default_rng(seed)
    n = len(solved)
    return [int(i) for i in rng.choice(n, size=min(size, n), replace=False)]


METHODS = {
    "greedy": greedy_task_force,
    "exact": exact_task_force,
    "top-fitness": top_fitness_task_force,
    "random": random_task_force,
}


def select_task_force(method: str, solved: np.ndarray, size: int, fitness: np.ndarray | None = None, *,
                      scores: np.ndarray | None = None, seed: int | None = None) -> list[int]:
    """Row indices of a task force picked by ``method`` (one of :data:`METHODS`); ``scores`` (per model
    and task) break the greedy method's ties."""
    if method not in METHODS:
        raise AcdcError(f"unknown task-force method {method!r}; known: {', '.join(METHODS)}")
    if method == "random":
        return random_task_force(solved, size, fitness, seed=seed)
    if method == "greedy":
        return greedy_task_force(solved, size, fitness, scores)
    return METHODS[method](solved, size, fitness)
