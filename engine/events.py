"""The run's events: one frozen dataclass per kind, told to plugins through ``acdc_event``.

Plugins dispatch on the event's type (``match event: case ModelDone(): ...``);
``event.kind`` and ``event.data`` (the fields as a dict) serve plugins written
against the older ``acdc_event(kind, data)`` form, which pluggy still calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """Base of every event."""

    kind: ClassVar[str]

    @property
    def data(self) -> dict[str, Any]:
        """The fields by name (the same objects, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    """A run starts, or resumes at ``start_generation``; a resumed run's ``committed`` generations are told as
    :class:`GenerationCommitted` told them (``generation``, ``archive`` rows, ``stats``), oldest first."""

    kind: ClassVar[str] = "run_started"
    run_dir: str
    generations: int
    start_generation: int
    committed: list[dict] = ()


@dataclass(frozen=True)
class GenerationStarted(Event):
    kind: ClassVar[str] = "generation_started"
    generation: int


@dataclass(frozen=True)
class StepStarted(Event):
    """A step of a generation starts: materialise, evaluate, score, select, adapt tasks, checkpoint;
    ``total`` units of work follow as :class:`Advanced` events. ``what``: which pass of the step it is
    (evaluate and score: ``seeds``, ``children``, ``members on new tasks``, ``task force``), or empty."""

    kind: ClassVar[str] = "step"
    name: str
    total: int
    generation: int
    what: str = ""


@dataclass(frozen=True)
class Advanced(Event):
    """``n`` units of the current step are done."""

    kind: ClassVar[str] = "advance"
    n: int


@dataclass(frozen=True)
class ModelDone(Event):
    """A new model is evaluated (``status`` ``evaluated``) or refused by the minimal criterion (``rejected``,
    with its ``reason``)."""

    kind: ClassVar[str] = "model_done"
    model_id: str
    fitness: float
    solved: int
    status: str
    reason: str | None


@dataclass(frozen=True)
class TaskRejected(Event):
    """A proposed task was not accepted, or an accepted one broke (``reason``); ``pool``: the task pool's
    counts by status after it (as :class:`GenerationCommitted`'s; empty where the pool did not change)."""

    kind: ClassVar[str] = "task_rejected"
    name: str
    reason: str
    pool: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskLimbo(Event):
    """A task is held back while its harder variant ``child_id`` proves itself, then ``restored`` or
    ``replaced`` (``outcome``)."""

    kind: ClassVar[str] = "task_limbo"
    task_id: str
    child_id: str
    outcome: str
    pool: dict[str, int] = field(default_factory=dict)  # the pool's counts after it


@dataclass(frozen=True)
class TasksAdded(Event):
    """Tasks ``accepted`` into the pool in ``generation``; ``pool``: its counts by status after them."""

    kind: ClassVar[str] = "tasks_added"
    generation: int
    accepted: list[str]
    pool: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerLost(Event):
    """A Ray actor died during a ``job`` (materialise or generate); it was replaced and the job re-queued."""

    kind: ClassVar[str] = "worker_lost"
    slot: int
    job: str
    retry: int


@dataclass(frozen=True)
class WeightsEvicted(Event):
    """The disk budget (``store.weights_budget_mb``) dropped these archive members' weight files."""

    kind: ClassVar[str] = "weights_evicted"
    generation: int
    model_ids: list[str]


@dataclass(frozen=True)
class WeightsRebuilt(Event):
    """An evicted model's weights were rebuilt from its ancestry because they were needed."""

    kind: ClassVar[str] = "weights_rebuilt"
    model_id: str
    seconds: float


@dataclass(frozen=True)
class WeightsDamaged(Event):
    """A kept weight file did not hash to its recorded digest (changed, truncated, a link); it is not used,
    and the model is rebuilt from its ancestry."""

    kind: ClassVar[str] = "weights_damaged"
    model_id: str
    path: str
    reason: str


@dataclass(frozen=True)
class GenerationCommitted(Event):
    """A generation is committed: the archive's rows, the pool's counts and the logbook's statistics record
    (fitness, Coverage, seconds per phase, ...)."""

    kind: ClassVar[str] = "generation_committed"
    generation: int
    archive: list[dict]
    pool: dict[str, int]
    stats: dict[str, Any]


@dataclass(frozen=True)
class RunFinished(Event):
    """The task force is picked: its Coverage of the run's ``n_tasks`` tasks, and the seed experts' own task
    force of the same size (``seed_force``, their specs ``seed_specs``) and its Coverage."""

    kind: ClassVar[str] = "run_finished"
    run_dir: str
    task_force: list[str]
    coverage: float
    seed_coverage: float
    seed_force: list[str]
    n_tasks: int
    seed_specs: list[str] = ()  # the seed spec of each model of ``seed_force``
    #: the plots of ``acdc-engine report`` for this run, made when called: (title, base64 PNG, note) each
    plots: Callable[[], list[tuple[str, str, str]]] = field(default=lambda: [], compare=False, repr=False)


#: Every event type by its kind.
EVENT_TYPES: dict[str, type[Event]] = {cls.kind: cls for cls in Event.__subclasses__()}
