"""Progress of long work, on a terminal and off it.

On a terminal, :class:`TickingProgress` is Rich's progress display. Off a
terminal (output to a file or a pipe) Rich shows nothing, so it prints plain
lines instead: one when a task starts, one when it ends, and one per
unfinished task at least every ``every_s`` seconds (what, how far, elapsed,
ETA), from a timer thread, so a step that makes no progress for a while is
still reported. ``ACDC_PROGRESS_EVERY_S`` in the environment sets that
interval. A task may carry a ``note`` (which pass of a step it is), shown
after its description.

Third-party progress bars (tqdm's: transformers' GGUF conversion, the Hub,
sentence-transformers, mergekit, ...) would print their own lines across the
live view. :func:`silence_foreign_bars` turns them off for the process;
inside :func:`folded_bars` they advance a task of the run's own display
instead, under the step they belong to.
"""

from __future__ import annotations

import contextlib
import functools
import io
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
    """One task's progress as a log line: description, done/total, elapsed, ETA (and its note)."""
    done = f"{task.completed:.0f}/{task.total:.0f}" if task.total is not None else f"{task.completed:.0f}"
    eta = "" if task.total is None else f", ETA {clock(task.time_remaining)}"
    note = task.fields.get("note")
    return f"{task.description}: {done}, {clock(task.elapsed)} elapsed{eta}" + (f" ({note})" if note else "")


class TickingProgress(Progress):
    """Rich's progress display on a terminal; plain lines at least every ``every_s`` seconds elsewhere."""

    def __init__(self, *, console: Console, every_s: float = PLAIN_EVERY_S, bar_width: int = 24,
                 transient: bool = False) -> None:
        super().__init__(TextColumn("{task.description}{task.fields[shown_note]}"), BarColumn(bar_width=bar_width),
                         MofNCompleteColumn(),
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

    def add_task(self, description: str, *args, note: str = "", **kwargs) -> TaskID:
        """A task; ``note`` (e.g. which pass of a step it is) is shown after its description."""
        task_id = super().add_task(description, *args, note=note, shown_note=f" ({note})" if note else "", **kwargs)
        if self.plain:
            total = self._tasks[task_id].total
            what = ", ".join(x for x in (f"{total:.0f}" if total is not None else "", note) if x)
            self._say(f"{description}" + (f" ({what})" if what else "") + " ...")
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


# --- third-party progress bars ---------------------------------------------------------------------

_fold: list[tuple[Progress, str]] = []  # the display and label that tqdm bars fold into, innermost last
_fold_lock = threading.Lock()


def silence_foreign_bars() -> None:
    """Turns off, for this process, the progress bars libraries print themselves: transformers' and the
    Hub's switches, and every tqdm bar (``disable`` forced on), except inside :func:`folded_bars`. Safe to
    call again."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # subprocesses, and tqdm imported later
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    with contextlib.suppress(ImportError):
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    with contextlib.suppress(ImportError):
        import tqdm.std

        _hook_tqdm(tqdm.std.tqdm)


def _hook_tqdm(cls) -> None:
    """Replaces ``cls.__init__``/``update``/``close`` once: a bar prints nothing; inside :func:`folded_bars`
    it advances a task of that display instead."""
    if getattr(cls.__init__, "_acdc_hooked", False):
        return
    init, update, close = cls.__init__, cls.update, cls.close

    @functools.wraps(init)
    def quiet_init(self, *args, **kwargs):
        if len(args) > 10:  # disable given by position (the 11th parameter)
            args = (*args[:10], *args[11:])
        with _fold_lock:
            target = _fold[-1] if _fold else None
        kwargs["disable"] = target is None
        if target is not None:
            kwargs["file"] = io.StringIO()  # the bar's own text goes nowhere
        init(self, *args, **kwargs)
        self._acdc_task = None
        if target is not None:
            progress, label = target
            what = (kwargs.get("desc") or (args[1] if len(args) > 1 else None) or "working").rstrip(". :")
            self._acdc_progress = progress
            self._acdc_task = progress.add_task(f"{label}: {what}", total=self.total)
            if self.n:
                progress.advance(self._acdc_task, self.n)

    @functools.wraps(update)
    def folded_update(self, n=1):
        out = update(self, n)
        if getattr(self, "_acdc_task", None) is not None:
            self._acdc_progress.update(self._acdc_task, completed=self.n)
        return out

    @functools.wraps(close)
    def folded_close(self):
        task, self_task = getattr(self, "_acdc_task", None), None
        if task is not None:
            self._acdc_task = self_task
            self._acdc_progress.update(task, completed=self.n)
            self._acdc_progress.remove_task(task)
        return close(self)

    quiet_init._acdc_hooked = True
    cls.__init__, cls.update, cls.close = quiet_init, folded_update, folded_close


@contextlib.contextmanager
def folded_bars(label: str, progress: Progress | None = None, console: Console | None = None):
    """Inside, a third-party tqdm bar shows as a task of ``progress`` (``label: its description``, its count,
    elapsed time; plain lines off a terminal), or of a display of its own on ``console`` (stderr by
    default), instead of printing its own lines. ``label`` names the step the bar belongs to."""
    silence_foreign_bars()
    own = progress is None
    if own:
        progress = TickingProgress(console=console or Console(stderr=True), transient=True)
        progress.start()
    with _fold_lock:
        _fold.append((progress, label))
    try:
        yield progress
    finally:
        with _fold_lock:
            _fold.remove((progress, label))
        if own:
            progress.stop()
