"""Task families as data: what a generator writes and what the pool holds.

A task family follows the METR task standard shape: Python source defining a
class ``TaskFamily`` with static methods ``get_tasks() -> dict[str, dict]``,
``get_instructions(t) -> str`` and ``score(t, submission) -> float | None``.
The engine never imports that source; the sandbox plugin runs it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

#: Task statuses of a run's global archive that count as accepted: every task ever let into the pool
#: (``broken`` and ``rejected`` are not). The run's task force, ``evaluate --method``, the report and the
#: discovery benchmark all pick over these.
ACCEPTED = ("active", "limbo", "retired", "removed")

Mode = Literal["initial", "harder", "novel"]


@dataclass(frozen=True)
class TaskSpec:
    """A task family as written by a generator: source plus metadata.

    ``params`` is free-form data the generator needs to make variants of this
    family later (for the procedural generator: template name, difficulty,
    seed). ``generator`` names the plugin that wrote it. ``rejected`` is set
    by a generator that gave up on the family (``"category: detail"``).
    """

    name: str
    description: str
    capability: str
    difficulty: int
    source: str
    generator: str
    params: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    rejected: str | None = None

    @property
    def digest(self) -> str:
        """Content hash of the source: identical code is the same task."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Instance:
    """One task instance: its key in ``get_tasks()``, its prompt and its data."""

    key: str
    instruction: str
    data: Any


@dataclass(frozen=True)
class TaskRequest:
    """What the engine asks of task generators.

    ``mode`` is ``initial`` (completely new families), ``harder`` (a harder
    variant of ``parent``) or ``novel`` (a new variant related to ``parent``).
    ``inspiration`` holds a few random tasks of the active pool.
    """

    mode: Mode
    n: int
    seed: int
    instances: int
    parent: TaskSpec | None = None
    parent_id: str | None = None
    inspiration: tuple[TaskSpec, ...] = ()


class TaskCodeError(Exception):
    """Task code failed in the sandbox: raised, hung, ran out of memory, or lied
    about its shape. The message is one line naming the reason."""


def checked_scores(scores, count: int) -> list[float]:
    """The scores an ``acdc_score_submissions`` plugin returned, each in [0, 1] (``None`` counts 0).

    Raises :class:`TaskCodeError` naming the first that is not a number in [0, 1]
    (1e308 would overflow a mean; a negative score would reward failing), or a
    count that does not match the submissions.
    """
    if not isinstance(scores, (list, tuple)) or len(scores) != count:
        raise TaskCodeError(f"score() gave {len(scores) if isinstance(scores, (list, tuple)) else scores!r} "
                            f"results for {count} submissions")
    out = []
    for value in scores:
        if value is None:
            out.append(0.0)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise TaskCodeError(f"score() returned {value!r}, outside [0, 1]")
        out.append(float(value))
    return out
