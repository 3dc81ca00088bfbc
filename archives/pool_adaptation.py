"""Task-pool adaptation: what happens to each active task, from pass rates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Adaptation:
    """The plan for one adaptation step (task ids)."""

    remove: list[str] = field(default_factory=list)
    harder: list[str] = field(default_factory=list)
    novel: list[str] = field(default_factory=list)


def plan_adaptation(pass_rates: dict[str, float], *, n_new: int, rng: np.random.Generator) -> Adaptation:
    """The AC/DC rule on the archive's pass rate of each active task.

    Solved by nobody: removed. Solved by more than half: parent of a harder
    variant. Otherwise: parent of a novel variant. At most ``n_new`` parents
    are drawn (uniformly, without replacement) for new tasks.
    """
    plan = Adaptation()
    parents: list[tuple[str, str]] = []
    for task_id, rate in pass_rates.items():
        if rate == 0:
            plan.remove.append(task_id)
        else:
            parents.append((task_id, "harder" if rate > 0.5 else "novel"))
    if parents and n_new:
        picks = rng.choice(len(parents), size=min(n_new, len(parents)), replace=False)
        for i in sorted(picks):
            task_id, mode = parents[i]
            getattr(plan, mode).append(task_id)
    return plan


def prune_oldest(active: list[str], cap: int) -> tuple[list[str], list[str]]:
    """Keeps the newest ``cap`` of ``active`` (oldest first); returns (kept, pruned)."""
    cut = max(0, len(active) - cap)
    return active[cut:], active[:cut]
