"""The model archive: pyribs' DNSArchive with the minimal criterion as a gate."""

from __future__ import annotations

import numpy as np
from ribs.archives import DNSArchive


class ModelArchive(DNSArchive):
    """A fixed-size population kept by Dominated Novelty Search.

    Solutions are :class:`~acdc_engine.recipe.Recipe` objects; the extra
    fields are ``model_id`` (str) and ``viable`` (bool, the minimal criterion).
    Rows told with ``viable=False`` never enter: they are dropped before DNS
    and reported with status 0 and DNS score NaN.
    """

    def __init__(self, *, capacity: int, measure_dim: int, k_neighbors: int, seed: int | None = None) -> None:
        super().__init__(
            solution_dim=(),
            solution_dtype=object,
            measure_dim=measure_dim,
            capacity=capacity,
            k_neighbors=k_neighbors,
            seed=seed,
            extra_fields={"model_id": ((), object), "viable": ((), bool)},
        )

    def add(self, solution, objective, measures, **fields):
        viable = np.asarray(fields["viable"], dtype=bool)
        info = {"status": np.zeros(len(viable), dtype=np.int32), "dns": np.full(len(viable), np.nan)}
        if viable.any():
            kept = super().add(
                np.asarray(solution, dtype=object)[viable],
                np.asarray(objective)[viable],
                np.asarray(measures)[viable],
                **{k: np.asarray(v, dtype=object if k == "model_id" else None)[viable] for k, v in fields.items()},
            )
            info["status"][viable] = kept["status"]
            info["dns"][viable] = kept["dns"]
        return info

    def member_ids(self) -> list[str]:
        return [str(m) for m in self.data("model_id")]

    def dns_scores(self) -> dict[str, float]:
        """Each member's DNS score within the current population."""
        data = self.data(["model_id", "measures", "objective"])
        scores = self.compute_dns(data["measures"], data["objective"])
        return {str(m): float(s) for m, s in zip(data["model_id"], scores)}

    def rebuild(self, recipes, model_ids, objectives, measures) -> None:
        """Replaces the population (e.g. after the task pool changed and every
        member was re-measured); keeps the ``capacity`` best by DNS."""
        self.clear()
        n = len(model_ids)
        if n:
            self.add(
                np.asarray(recipes + [None], dtype=object)[:-1],
                np.asarray(objectives, dtype=float),
                np.asarray(measures, dtype=float),
                model_id=np.asarray(model_ids + [None], dtype=object)[:-1],
                viable=np.ones(n, dtype=bool),
            )
