"""The rows a generation's commit writes, one typed record per table row (:class:`~acdc_engine.store.Commit`).

Each kind has one writer: a model's row is built once, when its generation settles
(:class:`~acdc_engine.run.ledger.Ledger`); a task's by the task pool (:class:`~acdc_engine.run.task_pool.TaskPool`),
the one place that changes a task's status; an evaluation's by the evaluator. The store writes their
fields by name (:func:`params`).
"""

from __future__ import annotations

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


def params(rows) -> list[dict[str, Any]]:
    """Rows as the named parameters of an ``INSERT``."""
    return [asdict(row) for row in rows]
