"""What the view shows is laid out to fit 80 columns and explained on screen: nothing that carries a result
is cut with an ellipsis (the closing comparison, the committed lines, the time line, seed names), each
generation's summary stays in the scrollback with the last frame, the archive's columns have a legend, the
evaluate bars say which pass they are; off a terminal here, in a real 80 x 24 tmux pane in
tests/test_view.py."""

from __future__ import annotations

import io

from rich.console import Console

from acdc_engine.events import (Advanced, GenerationCommitted, GenerationStarted, ModelDone, RunFinished, RunStarted,
                                 StepStarted, TaskLimbo)
from acdc_engine.ui.live_view import ProgressView
from acdc_engine.records import ArchiveRow

SEEDS = ["seed:smollm2", "seed:forged:smollm2:arithmetic", "seed:forged:smollm2:knowledge"]
ROWS = [ArchiveRow(**{"id": f"m{i + 1:04d}", "parents": [SEEDS[i]] if i < 3 else ["m0001", "m0003"], "fitness": 0.5 - i / 50,
         "solved": 9 - i, "score": float("inf") if i == 0 else 0.05 * i,
         "capabilities": {c: (i % 5) / 4 for c in ("arithmetic", "code", "knowledge", "lists", "strings", "units")}})
        for i in range(7)]
STATS = {"fit_max": 0.512, "fit_mean": 0.401, "coverage": 0.778, "elites": 7, "pool_active": 18,
         "task_diversity": 3.21, "elapsed_s": 1234.5, "time_total_s": 598.3, "time_materialise_s": 53.4,
         "time_generate_s": 541.4, "time_score_s": 1.9, "time_select_s": 0.1, "time_adapt_tasks_s": 0.8,
         "time_checkpoint_s": 0.7, "tokens": 123456, "tokens_per_s": 228.0, "answers_generated": 1440,
         "answers_cached": 108, "weights_rebuilt": 2, "weights_rebuilt_s": 21.5}
FINISHED = RunFinished(run_dir="runs/x", task_force=["m0001", "m0006", "m0005"], coverage=0.778,
                       seed_coverage=0.667, seed_force=["m0001", "m0002", "m0003"], n_tasks=18,
                       seed_specs=["smollm2", "forged:smollm2/arithmetic", "forged:smollm2/knowledge"])
CLOSING = ("task force m0001, m0006, m0005: Coverage 0.778 of 18 tasks (seed experts m0001 (smollm2), m0002 "
           "(forged:smollm2/arithmetic), m0003 (forged:smollm2/knowledge): 0.667)")


def feed(view: ProgressView, *, finish: bool = True) -> None:
    view.acdc_event(RunStarted(run_dir="runs/x", generations=2, start_generation=0))
    for gen in (0, 1, 2):
        view.acdc_event(GenerationStarted(generation=gen))
        view.acdc_event(StepStarted(name="evaluate", total=12, generation=gen, what="children"))
        view.acdc_event(Advanced(n=5))
        view.acdc_event(ModelDone(model_id=f"m{gen + 4:04d}", fitness=0.4, solved=3, status="evaluated",
                                  reason=None))
        view.acdc_event(TaskLimbo(task_id="t0003", child_id="t0019", outcome="held"))
        view.acdc_event(GenerationCommitted(generation=gen, archive=ROWS, pool={"active": 18, "accepted": 22,
                                                                               "limbo": 2, "removed": 2},
                                            stats=STATS))
    if finish:
        view.acdc_event(StepStarted(name="evaluate", total=30, generation=2, what="task force"))
        view.acdc_event(FINISHED)


def joined(text: str) -> str:
    """The text with its wrapped lines joined again (one space for each break)."""
    return " ".join(line.strip() for line in text.splitlines())


def test_the_live_frame_fits_80_by_24_explains_its_columns_and_cuts_no_result():
    view = ProgressView(Console(file=io.StringIO(), force_terminal=True, width=80, height=24, color_system=None))
    feed(view)
    out = Console(file=io.StringIO(), width=80, color_system=None, record=True)
    out.print(view._render())
    lines = out.export_text().rstrip("\n").split("\n")
    assert len(lines) <= 24 and max(map(len, lines)) <= 80, lines
    text = "\n".join(lines)
    assert CLOSING in joined(text)  # the closing comparison, wrapped, whole
    assert all(seed in text for seed in SEEDS)  # seed names whole
    assert "time 598.3s (materialise 53.4s, generate 541.4s" in joined(text) and "weights rebuilt 2 (21.5s)" in joined(text)
    assert "score: archive's own (DNS: distance to fitter members; inf: none is fitter)" in text
    assert "skills: a arithmetic, c code, k knowledge, l lists, s strings, u units" in text
    assert "share of active tasks solved: · none ░ ▒ ▓ █ all, blank: no task" in text
    assert "tasks: active 18, accepted 22, limbo 2, removed 2; rejected 0" in text  # status's names
    assert "gen 2: evaluate (task force)" in text
    assert not [line for line in lines if "…" in line and not line.startswith(("m0", "  task t", "gen "))], lines


def test_a_live_run_leaves_every_generation_summary_and_the_last_frame_in_the_scrollback():
    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24, color_system=None, record=True)
    view = ProgressView(console)
    with view:
        feed(view)
    text = console.export_text()
    for gen in (0, 1, 2):  # printed above the live display, whole (wrapped)
        assert (f"gen {gen} committed: fitness max 0.512 mean 0.401, coverage 0.778, archive 7, active tasks 18, "
                "task diversity 3.21, 1234.5s; took 598.3s (materialise 53.4s, generate 541.4s, score 1.9s, "
                "select 0.1s, adapt 0.8s, checkpoint 0.7s); 123456 tokens at 228.0 tok/s; answers 1440 generated, "
                "108 cached; weights rebuilt 2 (21.5s)") in joined(text)
    assert CLOSING in joined(text)  # the last frame
    assert text.rindex("gen 2/2") > text.rindex("; took 598.3s")  # the last frame after the summaries


def test_off_a_terminal_every_result_line_is_whole_at_80_columns():
    buf = io.StringIO()
    view = ProgressView(Console(file=buf, width=80))
    assert not view.live_mode
    with view:
        feed(view)
    text = buf.getvalue()
    assert "…" not in text
    assert CLOSING in joined(text)
    assert "gen 2 committed: fitness max 0.512 mean 0.401, coverage 0.778" in text
    assert "weights rebuilt 2 (21.5s)" in joined(text)
    assert "gen 0: evaluate (12, children) ..." in text and "gen 2: evaluate (30, task force) ..." in text
    assert "task t0003 in limbo while its harder variant t0019 is tried" in text


def test_the_header_says_measuring_before_the_first_model_and_never_a_false_zero_eta():
    view = ProgressView(Console(file=io.StringIO(), force_terminal=True, width=80, height=24, color_system=None))
    view.acdc_event(RunStarted(run_dir="runs/x", generations=3, start_generation=0))
    assert view.throughput() == "— models/min, — answers/s" and view._eta() == "?"
    view.acdc_event(GenerationCommitted(generation=0, archive=ROWS, pool={"active": 18}, stats=STATS))
    view.last_commit -= 3600  # the next generation runs far past the estimate
    assert view._eta().startswith("over by ")
    view.done_gens = 4  # every generation committed: the task force is picked
    assert view._eta() == "—"
