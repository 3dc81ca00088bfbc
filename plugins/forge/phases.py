"""The forge's phases as progress: each piece of work before, between and after the training steps (the
task families' instances, the replay's scores, the protected directions, the writing of an expert) shows
as a task of the display it is given (its name, a count, elapsed time and an ETA on a terminal; plain
lines off one), and as nothing without one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

#: Advances the current phase by a count (1 by default).
Advance = Callable[..., None]


class Phase(Protocol):
    """Opens a phase named ``description`` of ``total`` units; yields its :data:`Advance`."""

    def __call__(self, description: str, total: int | None = None) -> contextlib.AbstractContextManager[Advance]: ...


@contextlib.contextmanager
def quiet(description: str, total: int | None = None) -> Iterator[Advance]:
    """A phase shown nowhere."""
    yield lambda n=1: None


def shown_on(progress, prefix: str = "") -> Phase:
    """Phases shown as tasks of ``progress`` (a Rich progress display, e.g. the API's ``TickingProgress``),
    each named ``prefix`` + its description and removed when it ends; ``progress`` None: :func:`quiet`."""
    if progress is None:
        return quiet

    @contextlib.contextmanager
    def phase(description: str, total: int | None = None) -> Iterator[Advance]:
        task = progress.add_task(prefix + description, total=total)
        try:
            yield lambda n=1: progress.advance(task, n)
        finally:
            progress.remove_task(task)

    return phase


def prefixed(phase: Phase, prefix: str) -> Phase:
    """``phase`` with ``prefix`` before every description (e.g. the capability being forged)."""
    return lambda description, total=None: phase(prefix + description, total)
