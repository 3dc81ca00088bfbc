"""The run's task pool: every task ever generated, where each stands, and the one place that changes it.

A task is ``active`` (in the pool models are scored on), ``limbo`` (a parent
held back while its harder variant proves solvable), ``retired`` (replaced or
pruned), ``removed`` (solved by nobody), ``broken`` (its code failed) or
``rejected`` (never accepted). :class:`TaskPool` keeps the records, the active
list and the limbo map in step, and writes each change into the generation's
:class:`~acdc_engine.store.Commit`. What to change is decided elsewhere
(:func:`~acdc_engine.archives.plan_adaptation`, the loop).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from acdc_engine.archives.pool_adaptation import prune_oldest
from ..records import TaskRow
from ..store import Commit
from ..tasks import ACCEPTED, Instance, TaskSpec
from ..events import TaskLimbo


@dataclass
class TaskRecord:
    """A task in the run: its spec, its instances and where it stands."""

    id: str
    spec: TaskSpec
    instances: list[Instance]
    generation: int
    status: str  # active | limbo | retired | removed | broken | rejected


class TaskPool:
    """The tasks of one run; ``emit(event)`` tells the plugins of limbo events."""

    def __init__(self, *, emit: Callable[..., None]) -> None:
        self.emit = emit
        self.records: dict[str, TaskRecord] = {}
        self.active: list[str] = []
        self.limbo: dict[str, str] = {}  # harder variant id -> its parent, held back until the variant proves solvable

    def __getitem__(self, task_id: str) -> TaskRecord:
        return self.records[task_id]

    def accepted(self) -> list[str]:
        """Every task ever accepted into the pool (the global archive), oldest first."""
        return [t for t, rec in self.records.items() if rec.status in ACCEPTED]

    def digests(self) -> set[str]:
        """The content digests of every task generated so far (duplicates are skipped)."""
        return {rec.spec.digest for rec in self.records.values()}

    def add(self, spec: TaskSpec, instances: list[Instance], gen: int, status: str, reason: str | None,
            commit: Commit) -> str:
        """Records a new task (``active`` ones join the pool); returns its id."""
        task_id = f"t{len(self.records) + 1:04d}"
        self.records[task_id] = TaskRecord(task_id, spec, instances, gen, status)
        if status == "active":
            self.active.append(task_id)
        commit.tasks.append(TaskRow(
            id=task_id, name=spec.name, description=spec.description, capability=spec.capability,
            difficulty=spec.difficulty, source=spec.source, generator=spec.generator,
            params=json.dumps(spec.params), parent_id=spec.parent_id, generation=gen, status=status, reason=reason,
            instances=json.dumps([{"key": i.key, "instruction": i.instruction, "data": i.data} for i in instances]),
        ))
        return task_id

    def hold(self, parent_id: str, child_id: str, commit: Commit) -> None:
        """A parent with an accepted harder variant leaves the pool, held in limbo until the variant is judged."""
        self.limbo[child_id] = parent_id
        self.set_status(parent_id, "limbo", f"held back for its harder variant {child_id}", commit)
        self.emit(TaskLimbo(task_id=parent_id, child_id=child_id, outcome="held", pool=self.counts()))

    def settle_limbo(self, rates: dict[str, float], commit: Commit) -> set[str]:
        """Restores each held parent whose harder variant nobody solves (or broke); retires the others.

        Returns the variants found too hard.
        """
        too_hard = set()
        for child_id, parent_id in list(self.limbo.items()):
            child = self.records[child_id]
            restore = child.status == "broken" or (child.status == "active" and rates.get(child_id, 0) == 0)
            if restore:
                too_hard.add(child_id)
                self.set_status(parent_id, "active", f"restored: its harder variant {child_id} was solved by nobody",
                                commit)
            else:
                self.set_status(parent_id, "retired", f"replaced by its harder variant {child_id}", commit)
            del self.limbo[child_id]
            self.emit(TaskLimbo(task_id=parent_id, child_id=child_id, outcome="restored" if restore else "replaced",
                                pool=self.counts()))
        return too_hard

    def prune(self, cap: int, commit: Commit) -> None:
        """Retires the oldest active tasks beyond ``cap``."""
        self.active, pruned = prune_oldest(self.active, cap)
        for task_id in pruned:
            self.set_status(task_id, "retired", "pruned: oldest beyond the active cap", commit)

    def set_status(self, task_id: str, status: str, reason: str | None, commit: Commit) -> None:
        """Moves a task to ``status`` (into or out of the active pool) and records it in the commit."""
        self.records[task_id].status = status
        if status == "active" and task_id not in self.active:
            self.active.append(task_id)
        elif status != "active" and task_id in self.active:
            self.active.remove(task_id)
        for k, row in enumerate(commit.tasks):  # accepted in this very generation
            if row.id == task_id:
                commit.tasks[k] = replace(row, status=status, reason=reason)
                return
        commit.task_updates.append((task_id, status, reason))

    def counts(self) -> dict[str, int]:
        """Tasks per status, and how many were ever accepted."""
        counts = {"active": len(self.active)}
        for rec in self.records.values():
            if rec.status != "active":
                counts[rec.status] = counts.get(rec.status, 0) + 1
        counts["accepted"] = sum(r.status in ACCEPTED for r in self.records.values())
        return counts

    def inspiration(self, k: int, seed: int) -> tuple[TaskSpec, ...]:
        """Up to ``k`` random active tasks, shown to generators as inspiration."""
        k = min(k, len(self.active))
        picks = np.random.default_rng(seed).choice(len(self.active), size=k, replace=False)
        return tuple(self.records[self.active[i]].spec for i in sorted(picks))

    def restore(self, rows, active: list[str]) -> None:
        """The pool as committed: the store's task rows and the last generation's active list."""
        for row in rows:
            spec = TaskSpec(row["name"], row["description"], row["capability"], row["difficulty"], row["source"],
                            row["generator"], json.loads(row["params"]), row["parent_id"])
            instances = [Instance(i["key"], i["instruction"], i["data"]) for i in json.loads(row["instances"])]
            self.records[row["id"]] = TaskRecord(row["id"], spec, instances, row["generation"], row["status"])
        for parent_id, rec in self.records.items():  # a held parent's variant is its newest child
            if rec.status == "limbo":
                child = max(t for t, r in self.records.items()
                            if r.spec.parent_id == parent_id and r.status != "rejected")
                self.limbo[child] = parent_id
        self.active = list(active)
