"""Fixed-size populations selected by DEAP: NSGA-II and top-fitness.

The baselines AC/DC is compared with. Both keep ``capacity`` models out of
the current members plus the newcomers: ``nsga2`` by DEAP's
``tools.selNSGA2`` on two objectives, fitness and novelty (mean distance to
the ``k_neighbors`` nearest others in measure space); ``top-fitness`` by
fitness alone. They offer the same methods as the pyribs model archives.
"""

from __future__ import annotations

import numpy as np
from deap import base, tools


class _TwoObjectives(base.Fitness):
    weights = (1.0, 1.0)


class _Individual:
    __slots__ = ("index", "fitness")

    def __init__(self, index: int, values: tuple[float, float]) -> None:
        self.index = index
        self.fitness = _TwoObjectives(values)


def novelty(measures: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each row to its ``k`` nearest other rows."""
    measures = np.asarray(measures, dtype=float)
    if len(measures) < 2:
        return np.zeros(len(measures))
    dist = np.linalg.norm(measures[:, None, :] - measures[None, :, :], axis=-1)
    np.fill_diagonal(dist, np.inf)
    nearest = np.sort(dist, axis=1)[:, : min(k, len(measures) - 1)]
    return nearest.mean(axis=1)


class PopulationArchive:
    """A population of at most ``capacity`` models, selected by ``rule``
    (``nsga2`` or ``top-fitness``)."""

    def __init__(self, *, rule: str, capacity: int, measure_dim: int, k_neighbors: int) -> None:
        if rule not in ("nsga2", "top-fitness"):
            raise ValueError(f"unknown population rule {rule!r}")
        self.rule, self.capacity, self.measure_dim, self.k = rule, capacity, measure_dim, k_neighbors
        self.dtypes = {"solution": object}  # what pyribs emitters read from an archive
        self.clear()

    @property
    def empty(self) -> bool:
        return not self._ids

    def clear(self) -> None:
        self._recipes: list = []
        self._ids: list[str] = []
        self._objectives = np.zeros(0)
        self._measures = np.zeros((0, self.measure_dim))

    def _select(self, objectives: np.ndarray, measures: np.ndarray) -> list[int]:
        if len(objectives) <= self.capacity:
            return list(range(len(objectives)))
        if self.rule == "top-fitness":
            return sorted(range(len(objectives)), key=lambda i: (-objectives[i], i))[: self.capacity]
        nov = novelty(measures, self.k)
        pool = [_Individual(i, (float(f), float(n))) for i, (f, n) in enumerate(zip(objectives, nov))]
        return sorted(ind.index for ind in tools.selNSGA2(pool, self.capacity))

    def add(self, solution, objective, measures, **fields) -> dict[str, np.ndarray]:
        """Adds the viable rows, then keeps ``capacity`` of members + newcomers."""
        viable = np.asarray(fields["viable"], dtype=bool)
        new = np.flatnonzero(viable)
        recipes = self._recipes + [solution[i] for i in new]
        ids = self._ids + [str(fields["model_id"][i]) for i in new]
        objectives = np.concatenate([self._objectives, np.asarray(objective, dtype=float)[new]])
        all_measures = np.concatenate([self._measures, np.asarray(measures, dtype=float).reshape(-1, self.measure_dim)[new]])
        keep = self._select(objectives, all_measures)
        self._recipes = [recipes[i] for i in keep]
        self._ids = [ids[i] for i in keep]
        self._objectives, self._measures = objectives[keep], all_measures[keep]
        status = np.zeros(len(viable), dtype=np.int32)
        kept_ids = set(self._ids)
        status[new] = [1 if str(fields["model_id"][i]) in kept_ids else 0 for i in new]
        return {"status": status}

    def member_ids(self) -> list[str]:
        return list(self._ids)

    def member_objectives(self) -> dict[str, float]:
        return {m: float(o) for m, o in zip(self._ids, self._objectives)}

    def member_scores(self) -> dict[str, float]:
        """NSGA-II: each member's novelty; top-fitness: its objective."""
        values = novelty(self._measures, self.k) if self.rule == "nsga2" else self._objectives
        return {m: float(v) for m, v in zip(self._ids, values)}

    def rebuild(self, recipes, model_ids, objectives, measures) -> None:
        """Replaces the population with re-measured rows; selection applies."""
        self.clear()
        if len(model_ids):
            sol = np.empty(len(recipes), dtype=object)
            sol[:] = list(recipes)
            self.add(sol, objectives, measures, model_id=list(model_ids), viable=np.ones(len(model_ids), dtype=bool))
