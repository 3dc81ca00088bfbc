"""The live view: a Rich display on a terminal, plain log lines elsewhere.

It is a plugin like any other: it implements ``acdc_event`` and renders what
the loop reports. Nothing in the loop depends on it. On a terminal it shows,
within the terminal (80 x 24 at least): generation k of N with elapsed time,
ETA and throughput; the current step's progress (and which pass it is); the
archive with a compact skill heatmap by capability, under a legend of its
columns; the task pool (by status, as ``status`` names them, and rejected
proposals by reason); the most recent events; and where the last
generation's time went. Lines that carry results are never cut: each
generation's summary is printed above the live display, so it stays in the
scrollback with the last frame after the run, and the closing comparison
wraps. Where the frame would be taller than the terminal, older events and
then archive rows give way.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..events import (Advanced, Event, GenerationCommitted, GenerationStarted, ModelDone, RunFinished,
                      RunStarted, StepStarted, TaskLimbo, TaskRejected, TasksAdded, WeightsDamaged,
                      WeightsEvicted, WeightsRebuilt, WorkerLost)
from ..hookspecs import hookimpl
from .progress import TickingProgress, clock
from ..records import ArchiveRow

SHADES = "·░▒▓█"
MAX_ROWS = 8
#: Live re-renders per second: the clocks tick, at about 1 % of one core (benchmarks/view.py).
REFRESH_PER_S = 2


def heat(rates: dict[str, float], capabilities: list[str]) -> str:
    """One shaded character per capability: a dot (none solved) to a full block
    (all); blank where the active pool has no task of that capability."""
    out = []
    for cap in capabilities:
        rate = rates.get(cap)
        out.append(" " if rate is None else SHADES[min(int(rate * (len(SHADES) - 1) + 0.5), len(SHADES) - 1)])
    return "".join(out)


def archive_legend(rows: list[ArchiveRow]) -> list[str]:
    """What the archive table's columns mean, a line each: the skills letters, the heat marks, the score."""
    caps = sorted({c for r in rows for c in r.capabilities})
    lines = []
    if caps:
        lines.append("skills: " + ", ".join(f"{c[0]} {c}" for c in caps))
        lines.append(f"  share of active tasks solved: {SHADES[0]} none {' '.join(SHADES[1:-1])} {SHADES[-1]} all, "
                     "blank: no task")
    if rows:
        inf = "; inf: none is fitter" if any(r.score == float("inf") for r in rows) else ""
        lines.append(f"score: archive's own (DNS: distance to fitter members{inf})")
    return lines


def archive_table(rows: list[ArchiveRow], title: str = "archive", max_rows: int | None = None,
                  with_legend: bool = True) -> Table:
    """The archive as a table: id, parents, fitness, tasks solved, the archive's
    own score (DNS score for DNS) and a skill heatmap by capability, with the
    legend of its columns (:func:`archive_legend`) as its caption unless
    ``with_legend`` is false. Nothing is cut: a long parent or seed name wraps."""
    caps = sorted({c for r in rows for c in r.capabilities})
    legend = "".join(c[0] for c in caps)
    table = Table(title=title, expand=False, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True,
                  title_justify="left")
    for col in ("id", "parents", "fitness", "solved", "score", f"skills {legend}".strip()):
        table.add_column(col, justify="right" if col in ("fitness", "solved", "score") else "left",
                         no_wrap=col != "parents", overflow="fold")
    if rows and with_legend:
        table.caption = "\n".join(archive_legend(rows))
        table.caption_justify = "left"
    shown = rows if max_rows is None else rows[:max_rows]
    for r in shown:
        score = "inf" if r.score == float("inf") else f"{r.score:.3f}"
        table.add_row(r.id, ",".join(r.parents), f"{r.fitness:.3f}", str(r.solved), score, heat(r.capabilities, caps))
    if len(shown) < len(rows):
        table.add_row(f"+{len(rows) - len(shown)} more", "", "", "", "", "")
    return table


def reason_kind(reason: str) -> str:
    """A short class of a task's rejection reason, for counting."""
    head = reason.split(":")[0] if "raised" not in reason else reason.split(":")[0].split(" raised ")[-1]
    return head.strip()[:24] or "unknown"


TIME_COLUMNS = {"materialise": "time_materialise_s", "generate": "time_generate_s", "score": "time_score_s",
                "select": "time_select_s", "adapt": "time_adapt_tasks_s", "checkpoint": "time_checkpoint_s",
                "other": "time_other_s", "total": "time_total_s", "tokens": "tokens", "tok/s": "tokens_per_s",
                "cached": "answers_cached", "generated": "answers_generated", "rebuilt": "weights_rebuilt"}
#: Pool statuses besides active and accepted, as ``status`` names them.
POOL_STATUSES = ("limbo", "retired", "removed", "broken")


def fitted_tables(title: str, headers: list[str], rows: list[list[str]], width: int) -> list[Table]:
    """One table of right-justified columns, or, where it would be wider than ``width``, several: the
    first column repeated in each, the others in order, as many per table as fit (no header is cut)."""
    cells = [max([len(h), *(len(r[i]) for r in rows)]) + 3 for i, h in enumerate(headers)]  # padding, border
    groups: list[list[int]] = [[]]
    for i in range(1, len(headers)):
        if groups[-1] and 1 + cells[0] + sum(cells[j] for j in groups[-1]) + cells[i] > width:
            groups.append([])
        groups[-1].append(i)
    tables = []
    for k, group in enumerate(groups):
        part = f" ({k + 1}/{len(groups)})" if len(groups) > 1 else ""
        table = Table(title=title + part)
        for i in (0, *group):
            table.add_column(headers[i], justify="right", no_wrap=True)
        for r in rows:
            table.add_row(*(r[i] for i in (0, *group)))
        tables.append(table)
    return tables


def time_tables(stats: list[dict], width: int) -> list[Table]:
    """Where each generation's time went (seconds per phase) and the tokens it generated."""
    rows = [[str(s["gen"]), *(_cell(s.get(key)) for key in TIME_COLUMNS.values())] for s in stats]
    return fitted_tables("time per generation (s)", ["gen", *TIME_COLUMNS], rows, width)


def phases_text(s: dict) -> str:
    """A generation's seconds per phase, tokens, cache use and weight rebuilds."""
    phases = ", ".join(f"{col} {s[key]:.1f}s" for col, key in TIME_COLUMNS.items()
                       if key.startswith("time_") and key != "time_total_s" and s.get(key))
    rebuilt = s.get("weights_rebuilt", 0)
    seconds = f" ({s['weights_rebuilt_s']:.1f}s)" if rebuilt and s.get("weights_rebuilt_s") is not None else ""
    return (f"({phases}); {s.get('tokens', 0)} tokens at {s.get('tokens_per_s', 0):.1f} tok/s; answers "
            f"{s.get('answers_generated', 0)} generated, {s.get('answers_cached', 0)} cached; weights rebuilt "
            f"{rebuilt}{seconds}")


def time_line(s: dict) -> str:
    """One generation's time per phase, tokens, cache use and weight rebuilds, as one log line."""
    return f"  time {s.get('time_total_s', 0):.1f}s {phases_text(s)}"


def committed_line(generation: int, s: dict) -> str:
    """A committed generation's results: fitness, Coverage, archive and pool sizes, seconds since the start."""
    diversity = f"task diversity {s['task_diversity']:.2f}, " if s.get("task_diversity") is not None else ""
    return (f"gen {generation} committed: fitness max {s['fit_max']:.3f} mean {s['fit_mean']:.3f}, coverage "
            f"{s['coverage']:.3f}, archive {s['elites']}, active tasks {s['pool_active']}, {diversity}"
            f"{s['elapsed_s']}s")


def finished_line(event: RunFinished) -> str:
    """The run's closing comparison: its task force against the seed experts' own of the same size."""
    specs = list(event.seed_specs) or [""] * len(event.seed_force)
    seeds = ", ".join(f"{m} ({spec})" if spec else m for m, spec in zip(event.seed_force, specs))
    return (f"task force {', '.join(event.task_force)}: Coverage {event.coverage:.3f} of {event.n_tasks} tasks "
            f"(seed experts {seeds}: {event.seed_coverage:.3f})")


def wrapped(text: str | Text, style: str = "") -> Text:
    """Text that wraps at the width (folding a word longer than a line) whatever the console's ``soft_wrap``:
    a line that carries results is never cut."""
    text = Text(text, style=style) if isinstance(text, str) else text
    text.no_wrap, text.overflow = False, "fold"
    return text


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


class ProgressView:
    """Shows generation k of N, the current step's progress, the archive,
    task-pool counts, elapsed time and ETA, and where the last generation's time went."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.live_mode = self.console.is_terminal
        self.progress = TickingProgress(console=self.console, bar_width=20)  # plain lines off a terminal
        self.lock = threading.Lock()  # events arrive on the run's thread; the live display renders on its own
        self.task = None
        self.rows: list[ArchiveRow] = []
        self.last_stats: dict = {}
        self.pool: dict[str, int] = {}
        self.rejected: Counter[str] = Counter()
        self.events: deque[str] = deque(maxlen=4)
        self.generations = 0
        self.first_gen = 0
        self.gen = 0
        self.t0 = time.monotonic()
        self.done_gens = 0
        self.last_commit = self.t0
        self.last_gen_s = 0.0  # the last committed generation's seconds
        self.finished: str | None = None  # the closing comparison, once the run has finished
        self.changes = 0  # events seen: the frame's layout is measured again after one
        self.fit_key: tuple | None = None
        self.fit = (MAX_ROWS, 0)
        self.models_done = 0
        self.answers = 0
        self.evaluating = False
        self.live: Live | None = None

    def __enter__(self) -> ProgressView:
        if self.live_mode:  # re-rendered REFRESH_PER_S times a second, so the clocks tick between events
            self.live = Live(get_renderable=self._render, console=self.console, refresh_per_second=REFRESH_PER_S,
                             transient=False)
            self.live.__enter__()
        else:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.__exit__(*exc)
            self.live = None
        else:
            self.progress.stop()

    def _eta(self) -> str:
        """Time left: per generation left, the longer of the mean committed generation and the last one
        (generations grow as the pool does), less the current one's time so far; ``?`` before the first
        commit, ``—`` while the task force is picked, and how far past the estimate a generation runs
        rather than 0:00 while it still works."""
        if not self.done_gens:
            return "?"
        left = max(self.generations + 1 - self.first_gen - self.done_gens, 0)
        if not left:
            return "—"
        per_gen = max((self.last_commit - self.t0) / self.done_gens, self.last_gen_s)
        remaining = per_gen * left - (time.monotonic() - self.last_commit)
        return clock(max(remaining, 0.0)) if remaining > -1 else f"over by {clock(-remaining)}"

    def throughput(self) -> str:
        """Models evaluated per minute and answers per second since the start; ``—`` until the first."""
        minutes = max(time.monotonic() - self.t0, 1e-6) / 60
        models = f"{self.models_done / minutes:.1f}" if self.models_done else "—"
        answers = f"{self.answers / (minutes * 60):.1f}" if self.answers else "—"
        return f"{models} models/min, {answers} answers/s"

    def _render(self) -> Group:
        with self.lock:
            return self._render_now()

    def _render_now(self) -> Group:
        """The frame: within the console's height, older events and then archive rows give way."""
        elapsed = time.monotonic() - self.t0
        head = Text.from_markup(f"[bold]gen {self.gen}/{self.generations}[/]  {clock(elapsed)}  ETA {self._eta()}  "
                                f"{self.throughput()}")
        top = [wrapped(head), self.progress]
        bottom: list[RenderableType] = [wrapped(self.pool_line())]
        if self.finished:
            bottom.append(wrapped(self.finished))
        if self.last_stats:
            bottom.append(wrapped(time_line(self.last_stats)))
        width, height = self.console.size
        events = [] if self.finished else [Text(e, overflow="ellipsis", no_wrap=True, style="dim")
                                            for e in self.events]  # the last frame: room for what follows it
        legend = wrapped("\n".join(archive_legend(self.rows)), style="dim")
        key = (width, height, self.changes, len(self.progress.tasks), len(head))
        if key != self.fit_key:  # measured again only when what is shown changed, not at every tick
            self.fit_key, self.fit = key, self._fit(top, bottom, legend, width, height)
        rows, room = self.fit
        middle = [archive_table(self.rows, max_rows=rows, with_legend=False), legend] if self.rows else []
        events = events[len(events) - max(room, 0):] if room < len(events) else events
        return Group(*top, *middle, bottom[0], *events, *bottom[1:])

    def _fit(self, top: list, bottom: list, legend: Text, width: int, height: int) -> tuple[int, int]:
        """The archive rows shown and the lines left for events: events give way first, then rows."""
        used = sum(self._height(r, width) for r in (*top, *bottom))
        if not self.rows:
            return MAX_ROWS, height - used
        used += self._height(legend, width)
        for rows in range(MAX_ROWS, 0, -1):
            room = height - used - self._height(archive_table(self.rows, max_rows=rows, with_legend=False), width)
            if room >= 0:
                break
        return rows, room

    def _height(self, renderable: RenderableType, width: int) -> int:
        return len(self.console.render_lines(renderable, self.console.options.update(width=width, height=None),
                                             pad=False))

    def pool_line(self) -> str:
        """The task pool by status (the names ``status`` uses) and the rejected proposals by reason."""
        counts = [f"active {self.pool.get('active', 0)}", f"accepted {self.pool.get('accepted', 0)}"]
        counts += [f"{k} {self.pool[k]}" for k in POOL_STATUSES if self.pool.get(k)]
        n = max(sum(self.rejected.values()), self.pool.get("rejected", 0))
        reasons = ", ".join(f"{k} {v}" for k, v in self.rejected.most_common(3))
        return f"tasks: {', '.join(counts)}; rejected {n}" + (f": {reasons}" if reasons else "")

    def _log(self, text: str) -> None:
        self.events.append(text)
        if not self.live_mode:
            self.console.print(text, highlight=False, markup=False)

    @hookimpl
    def acdc_event(self, event):
        with self.lock:  # shown at the display's next refresh
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, Advanced):  # a count that moves changes no line's height
            self.changes += 1
        match event:
            case RunStarted():
                self.generations, self.first_gen = event.generations, event.start_generation
                self._log(f"run {event.run_dir}: generations {event.start_generation}..{event.generations}")
            case GenerationStarted():
                self.gen = event.generation
            case StepStarted():
                if self.task is not None:
                    self.progress.remove_task(self.task)
                self.task = self.progress.add_task(f"gen {event.generation}: {event.name}", total=event.total,
                                                   note=event.what)
                self.evaluating = event.name == "evaluate"
            case Advanced() if self.task is not None:
                self.progress.advance(self.task, event.n)
                if self.evaluating:
                    self.answers += event.n
            case ModelDone():
                self.models_done += 1
                note = f" ({event.reason})" if event.reason else ""
                self._log(f"{event.model_id}: fitness {event.fitness:.3f}, solved {event.solved}, {event.status}{note}")
            case WorkerLost():
                self._log(f"  worker {event.slot} lost during {event.job}; replaced, job re-queued "
                          f"(retry {event.retry})")
            case TaskRejected():
                self.pool = event.pool or self.pool
                self.rejected[reason_kind(event.reason)] += 1
                self._log(f"task {event.name} rejected: {event.reason}")
            case TasksAdded():
                self.pool = event.pool or self.pool
                self._log(f"gen {event.generation}: {len(event.accepted)} tasks accepted")
            case GenerationCommitted():
                self.rows, self.pool = event.archive, event.pool
                self.done_gens += 1
                now = time.monotonic()
                self.last_gen_s, self.last_commit = now - self.last_commit, now
                s = self.last_stats = event.stats
                if not self.live_mode:
                    self._log(committed_line(event.generation, s))
                    self._log(time_line(s))
                else:  # one paragraph into the scrollback; the frame shows the last time line on its own
                    self.events.append(committed_line(event.generation, s))
                    if self.live is not None:
                        took = f"took {s['time_total_s']:.1f}s " if s.get("time_total_s") is not None else ""
                        self.live.console.print(f"{committed_line(event.generation, s)}; {took}{phases_text(s)}",
                                                highlight=False, markup=False)
            case WeightsEvicted():
                self._log(f"  weights of {', '.join(event.model_ids)} evicted (disk budget)")
            case WeightsDamaged():
                self._log(f"  warning: {event.reason}; {event.model_id} is rebuilt from its ancestry")
            case WeightsRebuilt():
                self._log(f"  weights of {event.model_id} rebuilt from its ancestry ({event.seconds}s)")
            case TaskLimbo():
                self.pool = event.pool or self.pool
                what = {"held": f"in limbo while its harder variant {event.child_id} is tried",
                        "restored": f"back from limbo: its harder variant {event.child_id} was solved by nobody",
                        "replaced": f"retired: replaced by its harder variant {event.child_id}"}
                self._log(f"  task {event.task_id} {what.get(event.outcome, event.outcome)}")
            case RunFinished():
                self.finished = finished_line(event)
                if not self.live_mode:
                    self._log(self.finished)
