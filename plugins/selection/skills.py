"""Built-in plugin ``skills`` (always on): skill vectors as archive measures.

A model's measure is its pass/fail vector over the active tasks, scaled per
task by ``sqrt(w_t / sum(w))`` where ``w_t`` is the task's declared
difficulty, and padded with zeros to ``measure_dim`` (the pool's cap), so the
dimension stays fixed while the pool changes. The squared Euclidean distance
between two models is then the difficulty-weighted share of active tasks on
which they differ: the symmetric form of the AC/DC distance (the weighted
share of tasks that one model solves and a fitter one does not). Slots follow
the active pool's order; whenever the pool changes, every archive member is
re-measured.
"""

from __future__ import annotations

import numpy as np

from acdc_engine.api import hookimpl


@hookimpl
def acdc_descriptors(skills, difficulty, measure_dim, kind):
    if kind != "skills":
        return None
    skills = np.asarray(skills, dtype=float)
    weights = np.asarray(difficulty, dtype=float)
    out = np.zeros((skills.shape[0], measure_dim))
    if weights.size:
        out[:, : weights.size] = skills * np.sqrt(weights / weights.sum())
    return out
