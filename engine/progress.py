"""Progress of long work, on a terminal and off it.

On a terminal, :class:`TickingProgress` is Rich's progress display. Off a
terminal (output to a file or a pipe) Rich shows nothing, so it prints plain
lines instead: one when a task starts, one when it ends, and one per
unfinished task at least every ``every_s`` seconds (what, how far, elapsed,
ETA), from a timer thread, so a step that makes no progress for a while is
still reported. ``ACDC_PROGRESS_EVERY_S`` in the environment sets that
interval.
"""

from __future__ import annotations

import os
import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, Task, TaskID, TextColumn, TimeElapsedColumn

#: Longest silence off a terminal, in seconds (``ACDC_PROGRESS_EVERY_S`` sets another).
PLAIN_EVERY_S = float(os.environ.get("ACDC_PROGRESS_EVERY_S", "30"))


def clock(seconds: float | None) -> str:
    """``seconds`` as m:ss (or h:mm:ss); ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def plain_line(task: Task) -> str:
    """One task's progress as a log line: description, done/total, elapsed, ETA."""
    done = f"{task.completed:.0f}/{task.total:.0f}" if task.total is not None else f"{task.completed:.0f}"
    eta = "" if task.total is None else f", ETA {clock(task.time_remaining)}"
    return f"{task.description}: {done}, {clock(task.elapsed)} elapsed{eta}"


class TickingProgress(Progress):
    """Rich's progress display on a terminal; plain lines at least every ``every_s`` seconds elsewhere."""

    def __init__(self, *, console: Console, every_s: float = PLAIN_EVERY_S, bar_width: int = 24,
                 transient: bool = False) -> None:
        super().__init__(TextColumn("{task.description}"), BarColumn(bar_width=bar_width), MofNCompleteColumn(),
                         TimeElapsedColumn(), console=console, disable=not console.is_terminal, transient=transient)
        self.plain = not console.is_terminal
        self.every_s = every_s
        self._halt = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        if self.plain and self._ticker is None:
            self._halt.clear()
            self._ticker = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        if self._ticker is not None:
            self._halt.set()
            self._ticker.join()
            self._ticker = None
        super().stop()

    def _tick(self) -> None:
        while not self._halt.wait(self.every_s):
            self.print_lines()

    def print_lines(self) -> None:
        """A plain line per unfinished task."""
        for task in self.tasks:
            if not task.finished:
                self._say(plain_line(task))

    def add_task(self, description: str, *args, **kwargs) -> TaskID:
        task_id = super().add_task(description, *args, **kwargs)
        if self.plain:
            total = self._tasks[task_id].total
            self._say(f"{description}" + (f" ({total:.0f})" if total is not None else "") + " ...")
        return task_id

    def remove_task(self, task_id: TaskID) -> None:
        if self.plain:
            with self._lock:
                task = self._tasks.get(task_id)
            if task is not None:
                self._say(plain_line(task) + ("; done" if task.finished else ""))
        super().remove_task(task_id)

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)
