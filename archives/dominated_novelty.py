"""The AC/DC paper's Dominated Novelty Search score, on skill vectors.

pyribs' :class:`~ribs.archives.DNSArchive` scores a solution by its mean
Euclidean distance to its ``k`` nearest fitter neighbours. AC/DC replaces
the distance by an asymmetric one over pass/fail skill vectors: for a model
``i`` and a fitter model ``j``,

    d(i, j) = sum_t w_t [i solves t and j does not] / sum_t w_t

with the difficulty weight ``w_t`` of a task the share of the population
(members and newcomers together) that fails it. A model's score is the mean
of its ``k`` smallest ``d(i, j)`` over its fitter models ``j``: the share of
hard tasks that it alone brings, against the fitter models closest to it.
A model with no fitter model keeps the top score (``inf``). Fitter means a
higher objective; between equal objectives the earlier row counts as the
fitter, so of two equally fit clones exactly one is dominated (score 0).
Tasks that no model solves cannot tell models apart and are left out of the
weights' sum (they would scale every score alike).
"""

from __future__ import annotations

import numpy as np


def difficulty_weights(skills: np.ndarray) -> np.ndarray:
    """Per task, the share of models (rows) that fail it."""
    skills = np.asarray(skills, dtype=bool)
    return 1.0 - skills.mean(axis=0) if len(skills) else np.zeros(skills.shape[1])


def fitter_mask(objectives: np.ndarray) -> np.ndarray:
    """``mask[i, j]``: row ``j`` is fitter than row ``i`` (higher objective, or equal and earlier)."""
    f = np.asarray(objectives, dtype=float)
    order = np.arange(len(f))
    return (f[None, :] > f[:, None]) | ((f[None, :] == f[:, None]) & (order[None, :] < order[:, None]))


def dominated_novelty(skills: np.ndarray, objectives: np.ndarray, k: int) -> np.ndarray:
    """The paper's DNS score of every row of ``skills`` (models x tasks, bool) within the population."""
    skills = np.asarray(skills, dtype=bool)
    n = len(skills)
    if n == 0:
        return np.zeros(0)
    weights = difficulty_weights(skills) * skills.any(axis=0)
    total = weights.sum()
    # unique[i, j]: weighted share of tasks that i solves and j does not
    unique = (skills[:, None, :] & ~skills[None, :, :]).astype(float) @ weights
    unique = unique / total if total > 0 else np.zeros((n, n))
    distances = np.where(fitter_mask(objectives), unique, np.inf)
    nearest = np.sort(distances, axis=1)[:, : max(1, min(k, n - 1))]
    counts = np.isfinite(nearest).sum(axis=1)
    sums = np.where(np.isfinite(nearest), nearest, 0.0).sum(axis=1)
    return np.where(counts == 0, np.inf, sums / np.maximum(counts, 1))
