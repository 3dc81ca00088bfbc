"""The live view: a Rich display on a terminal, plain log lines elsewhere.

It is a plugin like any other: it implements ``acdc_event`` and renders what
the loop reports. Nothing in the loop depends on it. On a terminal it shows,
within 80 x 24: generation k of N with elapsed time, ETA and throughput; the
current step's progress; the archive with a compact skill heatmap by
capability; the task pool (active, accepted, rejected by reason); and the
most recent events.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from acdc_engine.events import (Advanced, Event, GenerationCommitted, GenerationStarted, ModelDone, RunFinished,
                                 RunStarted, StepStarted, TaskLimbo, TaskRejected, TasksAdded, WeightsDamaged,
                                 WeightsEvicted, WeightsRebuilt, WorkerLost)
from acdc_engine.hookspecs import hookimpl
from acdc_engine.progress import TickingProgress, clock

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


def archive_table(rows: list[dict], title: str = "archive", max_rows: int | None = None) -> Table:
    """The archive as a table: id, parents, fitness, tasks solved, the archive's
    own score (DNS score for DNS) and a skill heatmap by capability."""
    caps = sorted({c for r in rows for c in r.get("capabilities", {})})
    legend = "".join(c[0] for c in caps)
    table = Table(title=title, expand=False, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for col in ("id", "parents", "fitness", "solved", "score", f"skills {legend}".strip()):
        table.add_column(col, justify="right" if col in ("fitness", "solved", "score") else "left",
                         no_wrap=True, overflow="ellipsis", max_width=22 if col == "parents" else None)
    if caps:
        table.caption = "skills: " + ", ".join(f"{c[0]} {c}" for c in caps)
        table.caption_justify = "left"
    shown = rows if max_rows is None else rows[:max_rows]
    for r in shown:
        score = r.get("score", r.get("dns", float("nan")))
        score = "inf" if score == float("inf") else f"{score:.3f}"
        table.add_row(r["id"], ",".join(r["parents"]), f"{r['fitness']:.3f}", str(r["solved"]), score,
                      heat(r.get("capabilities", {}), caps))
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
                "cached": "answers_cached", "generated": "answers_generated"}


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


def time_line(s: dict) -> str:
    """One generation's time per phase, tokens and cache use, as one log line."""
    phases = ", ".join(f"{col} {s[key]:.1f}s" for col, key in TIME_COLUMNS.items()
                       if key.startswith("time_") and key != "time_total_s" and s.get(key))
    return (f"  time {s.get('time_total_s', 0):.1f}s ({phases}); {s.get('tokens', 0)} tokens at "
            f"{s.get('tokens_per_s', 0):.1f} tok/s; answers {s.get('answers_generated', 0)} generated, "
            f"{s.get('answers_cached', 0)} cached")


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
        self.rows: list[dict] = []
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
        """Time left: the mean committed generation's time per generation left, less the current one's time."""
        if not self.done_gens:
            return "?"
        per_gen = (self.last_commit - self.t0) / self.done_gens
        left = max(self.generations + 1 - self.first_gen - self.done_gens, 0)
        return clock(max(per_gen * left - (time.monotonic() - self.last_commit), 0.0) if left else 0.0)

    def throughput(self) -> str:
        minutes = max(time.monotonic() - self.t0, 1e-6) / 60
        return f"{self.models_done / minutes:.1f} models/min, {self.answers / (minutes * 60):.1f} answers/s"

    def _render(self) -> Group:
        with self.lock:
            return self._render_now()

    def _render_now(self) -> Group:
        elapsed = time.monotonic() - self.t0
        head = Text.from_markup(f"[bold]gen {self.gen}/{self.generations}[/]  {clock(elapsed)}  ETA {self._eta()}  "
                                f"{self.throughput()}", overflow="ellipsis")
        head.no_wrap = True
        parts = [head, self.progress]
        if self.rows:
            parts.append(archive_table(self.rows, max_rows=MAX_ROWS))
        rejected = ", ".join(f"{k} {v}" for k, v in self.rejected.most_common(3)) or "none"
        pool = Text(f"tasks: active {self.pool.get('active', 0)}, accepted {self.pool.get('accepted', 0)}, "
                    f"rejected: {rejected}", overflow="ellipsis", no_wrap=True)
        parts.append(pool)
        parts.extend(Text(e, overflow="ellipsis", no_wrap=True, style="dim") for e in self.events)
        if self.last_stats:
            parts.append(Text(time_line(self.last_stats)))
        return Group(*parts)

    def _log(self, text: str) -> None:
        self.events.append(text)
        if not self.live_mode:
            self.console.print(text, highlight=False, markup=False)

    @hookimpl
    def acdc_event(self, event):
        with self.lock:  # shown at the display's next refresh
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        match event:
            case RunStarted():
                self.generations, self.first_gen = event.generations, event.start_generation
                self._log(f"run {event.run_dir}: generations {event.start_generation}..{event.generations}")
            case GenerationStarted():
                self.gen = event.generation
            case StepStarted():
                if self.task is not None:
                    self.progress.remove_task(self.task)
                self.task = self.progress.add_task(f"gen {event.generation}: {event.name}", total=event.total)
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
                self.rejected[reason_kind(event.reason)] += 1
                self._log(f"task {event.name} rejected: {event.reason}")
            case TasksAdded():
                self._log(f"gen {event.generation}: {len(event.accepted)} tasks accepted")
            case GenerationCommitted():
                self.rows, self.pool = event.archive, event.pool
                self.done_gens += 1
                self.last_commit = time.monotonic()
                s = self.last_stats = event.stats
                self._log(f"gen {event.generation} committed: fitness max {s['fit_max']:.3f} mean "
                          f"{s['fit_mean']:.3f}, coverage {s['coverage']:.3f}, archive {s['elites']}, active tasks "
                          f"{s['pool_active']}, "
                          + (f"task diversity {s['task_diversity']:.2f}, " if s.get("task_diversity") is not None
                             else "")
                          + f"{s['elapsed_s']}s")
                if not self.live_mode:  # the live view shows the last generation's time line in a line of its own
                    self._log(time_line(s))
            case WeightsEvicted():
                self._log(f"  weights of {', '.join(event.model_ids)} evicted (disk budget)")
            case WeightsDamaged():
                self._log(f"  warning: {event.reason}; {event.model_id} is rebuilt from its ancestry")
            case WeightsRebuilt():
                self._log(f"  weights of {event.model_id} rebuilt from its ancestry ({event.seconds}s)")
            case TaskLimbo():
                self._log(f"  task {event.task_id} {event.outcome} (harder variant {event.child_id})")
            case RunFinished():
                self._log(f"task force {', '.join(event.task_force)}: Coverage {event.coverage:.3f} of "
                          f"{event.n_tasks} tasks (seed experts {', '.join(event.seed_force)}: "
                          f"{event.seed_coverage:.3f})")
