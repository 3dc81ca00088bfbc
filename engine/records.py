"""The rows a generation's commit writes, one typed record per table row (:class:`~acdc_engine.store.Commit`).

Each kind has one writer: a model's row and the archive's rows are built once, when their generation settles
(:class:`~acdc_engine.run.ledger.Ledger`); a task's by the task pool (:class:`~acdc_engine.run.task_pool.TaskPool`),
the one place that changes a task's status; an evaluation's by the evaluator. The store writes their
fields by name (:func:`params`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelRow:
    """A model as its generation commits it: its recipe (JSON), its parents (a JSON list), its fitness over
    the active pool, ``status`` (``elite``, ``retired`` or ``rejected``, with the minimal criterion's
    ``reason``) and the SHA-256 ``digest`` of its weights."""

    id: str
    recipe: str
    parents: str
    generation: int
    fitness: float
    status: str
    reason: str | None
    digest: str


@dataclass(frozen=True)
class TaskRow:
    """A task family as accepted or rejected: its spec's fields (``params`` and ``instances`` as JSON), the
    generation it was born in, its status and why."""

    id: str
    name: str
    description: str
    capability: str
    difficulty: int
    source: str
    generator: str
    params: str
    parent_id: str | None
    generation: int
    status: str
    reason: str | None
    instances: str


@dataclass(frozen=True)
class EvaluationRow:
    """One model's mean score on one task, and each instance's response, submission and score (JSON)."""

    model_id: str
    task_id: str
    score: float
    generation: int
    answers: str


@dataclass(frozen=True)
class ArchiveRow:
    """A member of the archive as its generation commits it (kept as JSON in ``generations.archive``, told
    in :class:`~acdc_engine.events.GenerationCommitted`): its ``parents`` (ids; a seed's own description),
    ``fitness`` over the active pool, tasks ``solved``, the archive's own ``score`` (Dominated Novelty
    Search: infinite for a member with no fitter neighbour; the objective for other archives) and its pass
    rate by ``capabilities``."""

    id: str
    parents: list[str]
    fitness: float
    solved: int
    score: float
    capabilities: dict[str, float]

    @classmethod
    def stored(cls, row: dict[str, Any]) -> ArchiveRow:
        """The row of a stored archive; runs written before the score was named ``score`` kept it as
        ``dns``, and older ones had no capabilities."""
        return cls(id=row["id"], parents=list(row["parents"]), fitness=row["fitness"], solved=row["solved"],
                   score=row.get("score", row.get("dns", float("nan"))), capabilities=row.get("capabilities", {}))

    def finite(self) -> dict[str, Any]:
        """The row as plain data for standard JSON: a score that is not finite becomes None."""
        return asdict(self) | {"score": self.score if math.isfinite(self.score) else None}


def params(rows) -> list[dict[str, Any]]:
    """Rows as the named parameters of an ``INSERT``."""
    return [asdict(row) for row in rows]
