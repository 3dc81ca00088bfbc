"""The archive and emitter choices: small factories over ``[evolution] archive`` and ``emitter``."""

from __future__ import annotations

from .cma_emitter import CMAEmitter
from .emitters import RecipeEmitter
from .model_archive import CVTModelArchive, GridModelArchive, ModelArchive, SkillDNSArchive
from .population_archive import PopulationArchive

KINDS = ("dns", "dns-euclidean", "map-elites-grid", "map-elites-cvt", "nsga2", "top-fitness")
EMITTERS = {"recipe": RecipeEmitter, "cma-es": CMAEmitter}


def make_archive(kind: str, *, capacity: int, measure_dim: int, k_neighbors: int, grid_cells: int, cvt_cells: int,
                 seed: int | None = None):
    """A model archive of ``kind`` (one of :data:`KINDS`)."""
    if kind == "dns":
        return SkillDNSArchive(capacity=capacity, measure_dim=measure_dim, k_neighbors=k_neighbors, seed=seed)
    if kind == "dns-euclidean":
        return ModelArchive(capacity=capacity, measure_dim=measure_dim, k_neighbors=k_neighbors, seed=seed)
    if kind == "map-elites-grid":
        return GridModelArchive(measure_dim=measure_dim, cells_per_dim=grid_cells, seed=seed)
    if kind == "map-elites-cvt":
        return CVTModelArchive(measure_dim=measure_dim, cells=cvt_cells, seed=seed)
    if kind in ("nsga2", "top-fitness"):
        return PopulationArchive(rule=kind, capacity=capacity, measure_dim=measure_dim, k_neighbors=k_neighbors)
    raise ValueError(f"unknown archive kind {kind!r}; known: {', '.join(KINDS)}")


def make_emitter(kind: str, archive, *, batch_size: int, merge, mutation, config, num_layers: int = 0,
                 seed: int | None = None):
    """The emitter of ``kind`` (one of :data:`EMITTERS`) over ``archive``; ``config`` is the run's config,
    ``num_layers`` the models' layer count (the CMA-ES emitter's weights go per block of layers)."""
    if kind not in EMITTERS:
        raise ValueError(f"unknown emitter {kind!r}; known: {', '.join(EMITTERS)}")
    extra = {"num_layers": num_layers} if kind == "cma-es" else {}
    return EMITTERS[kind](archive, batch_size=batch_size, merge=merge, mutation=mutation,
                          config=config, seed=seed, **extra)
