"""Built-in plugin ``capabilities`` (always on): pass rate per capability.

The descriptor kind ``capabilities`` (the default for MAP-Elites archives, as
in CycleQD): one measure axis per name in ``[evolution] capabilities``, each
the share of the active tasks of that capability the model solves (0 where
the pool holds none). Tasks of other capabilities do not count.
"""

from __future__ import annotations

import numpy as np

from acdc_engine.api import hookimpl


@hookimpl
def acdc_descriptors(skills, measure_dim, capabilities, axes, kind):
    if kind != "capabilities":
        return None
    skills = np.asarray(skills, dtype=float)
    out = np.zeros((skills.shape[0], measure_dim))
    tags = np.asarray(capabilities, dtype=object)
    for j, axis in enumerate(axes[:measure_dim]):
        mask = tags == axis
        if mask.any():
            out[:, j] = skills[:, mask].mean(axis=1)
    return out
