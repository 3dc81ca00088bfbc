"""The live view: fits 80 x 24 (rendered, and in a real tmux pane), plain lines
off a terminal at least every 30 s, a bar that moves within a step, and one Ctrl-C that stops a real run
at the end of the current batch; it resumes."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from rich.console import Console

from acdc_engine.events import (Advanced, GenerationCommitted, GenerationStarted, ModelDone, RunStarted, StepStarted,
                                 TaskLimbo, TaskRejected, TasksAdded)
from acdc_engine.ui.progress import TickingProgress
from acdc_engine.ui.live_view import ProgressView, heat
from acdc_engine.records import ArchiveRow
from conftest import tiny_overrides

ROWS = [ArchiveRow(**{"id": f"m{i:04d}", "parents": ["m0001", "m0002"], "fitness": 0.5 - i / 100, "solved": 3, "score": 0.1 * i,
         "capabilities": {"arithmetic": 1.0, "code": 0.0, "strings": 0.5}}) for i in range(12)]
STATS = {"fit_max": 0.5, "fit_mean": 0.4, "coverage": 0.6, "elites": 12, "pool_active": 9, "elapsed_s": 3.0}


def feed(view: ProgressView) -> None:
    view.acdc_event(RunStarted(run_dir="runs/x", generations=3, start_generation=0))
    view.acdc_event(GenerationStarted(generation=1))
    view.acdc_event(StepStarted(name="evaluate", total=10, generation=1))
    view.acdc_event(Advanced(n=4))
    view.acdc_event(TaskRejected(name="t", reason="score() raised ValueError: bad"))
    view.acdc_event(TaskRejected(name="u", reason="timed out after 2 s"))
    for i in range(6):
        view.acdc_event(ModelDone(model_id=f"m{i:04d}", fitness=0.4, solved=3, status="evaluated", reason=None))
    view.acdc_event(GenerationCommitted(generation=1, archive=ROWS, pool={"active": 9, "accepted": 14},
                                        stats=STATS))


def test_rendered_view_fits_80_by_24_and_shows_every_panel():
    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24, color_system=None)
    view = ProgressView(console)
    feed(view)
    out = Console(file=io.StringIO(), width=80, color_system=None, record=True)
    out.print(view._render())
    lines = out.export_text().rstrip("\n").split("\n")
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "gen 1/3" in text and "models/min" in text and "answers/s" in text  # header with throughput
    assert "skills acs" in text and "skills: a arithmetic, c code, s strings" in text  # the columns' legend
    assert text.count("time 0.0s") <= 1  # the last generation's time line once
    assert "skills acs" in text and heat(ROWS[0].capabilities, ["arithmetic", "code", "strings"]) in text
    assert "+4 more" in text  # 12 members, 8 shown
    assert "active 9, accepted 14" in text and "ValueError 1" in text and "timed out after 2 s 1" in text
    assert "m0005: fitness 0.400" in text  # recent events


def test_the_tasks_line_follows_the_pool_between_commits():
    view = ProgressView(Console(file=io.StringIO(), force_terminal=True, width=80, height=24, color_system=None))
    feed(view)
    assert view.pool_line().startswith("tasks: active 9, accepted 14;")
    view.acdc_event(TasksAdded(generation=2, accepted=["a", "b"], pool={"active": 11, "accepted": 16}))
    assert view.pool_line().startswith("tasks: active 11, accepted 16;")
    view.acdc_event(TaskLimbo(task_id="t0003", child_id="t0019", outcome="held",
                              pool={"active": 10, "accepted": 16, "limbo": 1}))
    assert view.pool_line().startswith("tasks: active 10, accepted 16, limbo 1;")
    view.acdc_event(TaskRejected(name="v", reason="timed out after 2 s"))  # an event of an older plugin: no counts
    assert view.pool_line().startswith("tasks: active 10, accepted 16, limbo 1;")


def test_plain_lines_off_a_terminal():
    buf = io.StringIO()
    view = ProgressView(Console(file=buf, width=200))
    assert not view.live_mode
    with view:
        feed(view)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "run runs/x: generations 0..3" and "gen 1: evaluate (10) ..." in lines
    assert any(line.startswith("gen 1 committed: fitness max 0.500") for line in lines)


def test_off_a_terminal_a_line_comes_even_when_nothing_advances():
    buf = io.StringIO()
    with TickingProgress(console=Console(file=buf, width=200), every_s=0.1) as progress:
        task = progress.add_task("gen 0: evaluate", total=10)
        progress.advance(task, 3)
        time.sleep(0.45)  # no advance meanwhile
        progress.remove_task(task)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "gen 0: evaluate (10) ..."
    ticks = [line for line in lines if line.startswith("gen 0: evaluate: 3/10, ") and "ETA" in line]
    assert len(ticks) >= 3, lines  # one at least every 0.1 s, the last one on removal


def test_the_live_header_clock_ticks_between_events():
    buf = io.StringIO()
    view = ProgressView(Console(file=buf, force_terminal=True, width=80, height=24, color_system=None))
    with view:
        feed(view)
        time.sleep(2.2)  # no event meanwhile
    shown = buf.getvalue()
    assert len(set(re.findall(r"gen 1/3  (\d+:\d\d)", shown))) >= 2, shown  # re-rendered with a later clock


SLOW_ANSWERS = {"generation.max_new_tokens": 32, "generation.batch_size": 1, "tasks.instances_per_family": 2}
# The view redraws twice a second (REFRESH_PER_S): answering must take seconds for a poll to see its bar part-way.
SLOWER_ANSWERS = {**SLOW_ANSWERS, "generation.max_new_tokens": 96, "tasks.instances_per_family": 4}


def run_args(tiny_models, tmp_path, run_dir, generations, **extra):
    sets = tiny_overrides(tiny_models, tmp_path, **{"run.generations": generations, "tasks.initial_families": 4,
                                                     "tasks.new_per_adaptation": 2, **extra})
    return ["run", "--run-dir", str(run_dir)] + [a for s in sets for a in ("--set", s)]


def committed(db_path) -> int:
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)  # never creates the file under the run
        try:
            return db.execute("SELECT COALESCE(MAX(generation), -1) FROM generations").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return -1


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup.sh installs it)")
def test_live_view_in_an_80x24_tmux_pane_keeps_its_results_whole(tiny_models, tmp_path):
    session = f"acdc-view-{os.getpid()}"
    args = [sys.executable, "-m", "acdc_engine", *run_args(tiny_models, tmp_path, tmp_path / "run", 1, **SLOWER_ANSWERS)]
    script = tmp_path / "go.sh"
    script.write_text(f"cd {shlex.quote(str(tmp_path))} && {shlex.join(args)}; sleep 60\n")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", "bash", str(script)],
                   check=True)
    try:
        deadline, screen, passes = time.monotonic() + 240, "", set()
        partial: dict[str, set[int]] = {}  # evaluate bar of a generation -> the counts seen part-way
        while time.monotonic() < deadline:
            capture = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True)
            assert capture.returncode == 0, f"the tmux session ended early: {capture.stderr}"
            screen = capture.stdout
            for gen, done, total in re.findall(r"gen (\d+): evaluate\b.*?(\d+)/(\d+)", screen):
                if 0 < int(done) < int(total):
                    partial.setdefault(gen, set()).add(int(done))
            passes.update(re.findall(r"gen \d+: evaluate \(([a-z ]+)\)", screen))
            if "results:" in screen:
                break
            time.sleep(0.1)
        history = subprocess.run(["tmux", "capture-pane", "-p", "-J", "-S", "-", "-t", session],
                                 capture_output=True, text=True).stdout  # -J: wrapped lines joined
        lines = screen.splitlines()
        assert "results:" in screen, screen
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert "gen 1/1" in screen and "models/min" in screen and "skills" in screen
        assert "tasks: active" in screen and "task force" in screen
        assert any(len(seen) >= 2 for seen in partial.values()), partial  # the bar moved within one step
        assert sum(line.lstrip().startswith("time ") for line in lines) == 1, screen  # the time line once
        assert "children" in passes, passes  # the evaluate bar says which pass it is
        closing = " ".join(line.strip() for line in screen[screen.index("task force"):].splitlines())  # unwrapped
        assert re.search(r"task force [m0-9, ]+: Coverage [0-9.]+ of \d+ tasks \(seed experts .+\): [0-9.]+\)",
                         closing), screen
        assert "…" not in screen.split("task force")[1], screen  # the closing comparison and what follows it
        assert "share of active tasks solved" in screen and "score: archive's own (DNS" in screen  # the legend
        for gen in (0, 1):  # each generation's summary stays in the scrollback, whole
            assert re.search(rf"gen {gen} committed: fitness max .*; took [0-9.]+s \(.*weights rebuilt \d+",
                             history), history
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_one_ctrl_c_stops_within_the_step_and_the_run_resumes(tiny_models, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "acdc_engine",
                             *run_args(tiny_models, tmp_path, run_dir, 2, **SLOW_ANSWERS)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    for line in proc.stdout:  # plain lines: the step's start is on a line of its own
        out.append(line)
        if line.startswith("gen 1: evaluate ("):
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    out = "".join(out) + rest
    assert proc.returncode == 130, out
    assert "stopping at the end of the current batch" in out
    assert "interrupted (stopped during evaluate of generation 1)" in out
    assert not re.search(r"gen 1: evaluate: (\d+)/\1", out), out  # it did not wait for the step's end
    assert "\n  acdc-engine resume " in out  # the resume command on a line of its own
    assert "Traceback" not in out
    last = committed(run_dir / "run.sqlite")
    assert 0 <= last < 2
    resumed = subprocess.run([sys.executable, "-m", "acdc_engine", "resume", str(run_dir)], capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert committed(run_dir / "run.sqlite") == 2
    db = sqlite3.connect(run_dir / "run.sqlite")
    assert db.execute("SELECT COUNT(*) FROM task_force").fetchone()[0] == 1


def test_a_wide_table_is_split_into_tables_that_fit_repeating_its_first_column():
    from rich.console import Console

    from acdc_engine.ui.live_view import fitted_tables

    headers = ["gen", *(f"column_{k}" for k in range(9))]
    rows = [[str(g), *(f"{g * k:.3f}" for k in range(9))] for g in range(3)]
    tables = fitted_tables("stats", headers, rows, 60)
    assert len(tables) > 1 and [t.title for t in tables][0] == f"stats (1/{len(tables)})"
    assert all(t.columns[0].header == "gen" for t in tables)
    assert [c.header for t in tables for c in t.columns[1:]] == headers[1:]  # each other column once, in order
    console = Console(width=60, record=True, file=open("/dev/null", "w"))
    for t in tables:
        console.print(t)
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 60 and "…" not in text
    assert len(fitted_tables("stats", headers, rows, 400)) == 1 and fitted_tables("s", headers, rows, 400)[0].title == "s"


def test_every_event_kind_has_one_type_and_both_hook_forms_receive_it():
    import pluggy

    from acdc_engine import hookspecs
    from acdc_engine.events import EVENT_TYPES, WeightsRebuilt
    from acdc_engine.hookspecs import hookimpl

    assert len(EVENT_TYPES) == 14 and all(cls.kind == kind for kind, cls in EVENT_TYPES.items())
    with pytest.raises(TypeError):
        Advanced(n=1, extra=2)  # a field the type lacks
    seen = []

    class Typed:
        @hookimpl
        def acdc_event(self, event):
            seen.append(type(event).__name__)

    class Plain:  # the (kind, data) form of older plugins
        @hookimpl
        def acdc_event(self, kind, data):
            seen.append((kind, data))

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(Typed())
    pm.register(Plain())
    event = WeightsRebuilt(model_id="m0003", seconds=4.2)
    pm.hook.acdc_event(event=event, kind=event.kind, data=event.data)
    assert seen == [("weights_rebuilt", {"model_id": "m0003", "seconds": 4.2}), "WeightsRebuilt"]
