"""Model archives on pyribs: DNS (the default, with the AC/DC paper's score or
pyribs' Euclidean one) and MAP-Elites grids.

Every model archive offers what the loop uses: ``add`` with a ``viable``
field (the minimal criterion as a gate), ``member_ids()``,
``member_objectives()``, ``member_scores()`` (the archive's own per-member
selection score) and ``rebuild()``. Solutions are
:class:`~acdc_engine.recipe.Recipe` objects (``solution_dim=()``, object
dtype); the extra fields are ``model_id`` and ``viable``.
"""

from __future__ import annotations

import numpy as np
from ribs.archives import CVTArchive, DNSArchive, GridArchive, k_means_centroids

from .dominated_novelty import dominated_novelty

EXTRA_FIELDS = {"model_id": ((), object), "viable": ((), bool)}


def _objects(items) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


class ViableGate:
    """Mixin for pyribs archives: rows told with ``viable=False`` never enter.

    They are dropped before the archive's own ``add`` and reported with
    status 0.
    """

    def add(self, solution, objective, measures, **fields):
        viable = np.asarray(fields["viable"], dtype=bool)
        info = {"status": np.zeros(len(viable), dtype=np.int32)}
        if viable.any():
            kept = super().add(
                np.asarray(solution, dtype=object)[viable],
                np.asarray(objective)[viable],
                np.asarray(measures)[viable],
                **{k: np.asarray(v, dtype=object if k == "model_id" else None)[viable] for k, v in fields.items()},
            )
            for key, values in kept.items():
                if key not in info:
                    info[key] = np.full(len(viable), np.nan)
                info[key][viable] = values
        return info

    def member_ids(self) -> list[str]:
        return [str(m) for m in self.data("model_id")]

    def member_objectives(self) -> dict[str, float]:
        data = self.data(["model_id", "objective"])
        return {str(m): float(o) for m, o in zip(data["model_id"], data["objective"])}

    def member_scores(self) -> dict[str, float]:
        """The per-member selection score; for MAP-Elites, the objective."""
        return self.member_objectives()

    def rebuild(self, recipes, model_ids, objectives, measures) -> None:
        """Replaces the population (e.g. after the task pool changed and every
        member was re-measured); the archive's own rules decide who stays."""
        self.clear()
        if len(model_ids):
            self.add(_objects(recipes), np.asarray(objectives, dtype=float), np.asarray(measures, dtype=float),
                     model_id=_objects(model_ids), viable=np.ones(len(model_ids), dtype=bool))


class ModelArchive(ViableGate, DNSArchive):
    """A fixed-size population kept by Dominated Novelty Search with pyribs' score:
    the mean Euclidean distance to the ``k`` nearest fitter neighbours in measure space."""

    def __init__(self, *, capacity: int, measure_dim: int, k_neighbors: int, seed: int | None = None) -> None:
        super().__init__(solution_dim=(), solution_dtype=object, measure_dim=measure_dim, capacity=capacity,
                         k_neighbors=k_neighbors, seed=seed, extra_fields=EXTRA_FIELDS)

    def member_scores(self) -> dict[str, float]:
        """Each member's DNS score within the current population."""
        data = self.data(["model_id", "measures", "objective"])
        scores = self.compute_dns(data["measures"], data["objective"])
        return {str(m): float(s) for m, s in zip(data["model_id"], scores)}


class SkillDNSArchive(ModelArchive):
    """Dominated Novelty Search with the AC/DC paper's score
    (:func:`~acdc_engine.archives.dominated_novelty.dominated_novelty`).

    Measures are skill vectors (``descriptors = "skills"``): a task counts as
    solved where its slot is positive, whatever its scale; zero padding
    beyond the active pool is solved by nobody and so ignored.
    """

    def compute_dns(self, measures, objectives) -> np.ndarray:
        return dominated_novelty(np.asarray(measures) > 0, np.asarray(objectives, dtype=float), self.k_neighbors)


class GridModelArchive(ViableGate, GridArchive):
    """MAP-Elites on a grid over [0, 1]^measure_dim (e.g. pass rate per capability):
    the fittest model of each cell stays."""

    def __init__(self, *, measure_dim: int, cells_per_dim: int, seed: int | None = None) -> None:
        super().__init__(solution_dim=(), solution_dtype=object, dims=[cells_per_dim] * measure_dim,
                         ranges=[(0.0, 1.0)] * measure_dim, seed=seed, extra_fields=EXTRA_FIELDS)


class CVTModelArchive(ViableGate, CVTArchive):
    """MAP-Elites on a centroidal Voronoi tessellation of [0, 1]^measure_dim;
    centroids from pyribs' seeded k-means."""

    def __init__(self, *, measure_dim: int, cells: int, seed: int | None = None) -> None:
        ranges = [(0.0, 1.0)] * measure_dim
        centroids, _ = k_means_centroids(centroids=cells, ranges=ranges, samples=max(20 * cells, 1000), seed=seed)
        super().__init__(solution_dim=(), solution_dtype=object, centroids=centroids, ranges=ranges, seed=seed,
                         extra_fields=EXTRA_FIELDS)
