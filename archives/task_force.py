"""Task forces: small sets of models chosen to cover the most tasks."""

from __future__ import annotations

import numpy as np


def coverage(solved: np.ndarray) -> float:
    """Share of tasks (columns) solved by at least one model (row)."""
    solved = np.asarray(solved, dtype=bool)
    if solved.shape[1] == 0:
        return 0.0
    return float(solved.any(axis=0).mean()) if solved.shape[0] else 0.0


def greedy_task_force(solved: np.ndarray, size: int, fitness: np.ndarray | None = None) -> list[int]:
    """Row indices of ``size`` models picked greedily for Coverage.

    Each step adds the model that solves the most still-uncovered tasks; ties
    go to the fitter model (``fitness``), then the lower index. Stops early
    when every model is in.
    """
    solved = np.asarray(solved, dtype=bool)
    fitness = np.zeros(len(solved)) if fitness is None else np.asarray(fitness, dtype=float)
    chosen: list[int] = []
    covered = np.zeros(solved.shape[1], dtype=bool)
    for _ in range(min(size, len(solved))):
        gains = (solved & ~covered).sum(axis=1).astype(float)
        gains[chosen] = -1
        best = max((i for i in range(len(solved)) if i not in chosen), key=lambda i: (gains[i], fitness[i], -i))
        chosen.append(best)
        covered |= solved[best]
    return chosen
