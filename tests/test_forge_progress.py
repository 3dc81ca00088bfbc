"""The forge shows every phase of its work, the preparation before training step 1 included, and says how
long the forging left takes from the speed it measured (issue 44, item 1). A tiny llama base; no timed
assertions: the estimate is checked on a clock the test sets."""

from __future__ import annotations

import io
import re

import pytest
from acdc_engine.api import TickingProgress
from acdc_engine.config import load_config
from acdc_engine.plugin_manager import build_plugin_manager
from acdc_engine.plugins.forge import command
from acdc_engine.plugins.forge.cache import Forge
from acdc_engine.plugins.forge.command import Estimate, forge_experts, forge_progress
from acdc_engine.plugins.forge.phases import quiet, shown_on
from acdc_engine.plugins.forge.training import ForgeRecipe
from conftest import make_tiny_model
from rich.console import Console
from rich.progress import TimeRemainingColumn

RECIPE = ForgeRecipe(steps=4, batch_size=4, replay_per_batch=2, train_per_family=2, difficulties=(1,), max_len=96)


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200, soft_wrap=True), out


@pytest.fixture(scope="module")
def forged_off_a_terminal(tmp_path_factory, smollm2_dir):
    """A tiny base's arithmetic expert forged (replay first) with the forge's display off a terminal."""
    root = tmp_path_factory.mktemp("forge-progress")
    base = make_tiny_model(root / "base", smollm2_dir, seed=7)
    config = load_config(None, [f"models.cache_dir={root / 'cache'}", f"models.base={base}",
                                "generation.dtype=float32", "generation.max_new_tokens=4"])
    console, out = plain_console()
    with TickingProgress(console=console, transient=True) as progress:
        smith = Forge(build_plugin_manager(["taskgen"]).hook, config, recipe=RECIPE, phase=shown_on(progress))
        forge_experts(smith, ["arithmetic"], progress)
    return {"smith": smith, "lines": out.getvalue().splitlines()}


def started_and_ended(lines: list[str], name: str) -> tuple[int, int]:
    """The total a phase announced when it started, and the count it reached when it ended."""
    start = [ln for ln in lines if ln.startswith(f"{name} (") and ln.endswith(") ...")]
    end = [ln for ln in lines if ln.startswith(f"{name}: ") and ln.endswith("; done")]
    assert len(start) == len(end) == 1, (name, lines)
    total = int(re.fullmatch(rf"{re.escape(name)} \((\d+)\) \.\.\.", start[0]).group(1))
    done, of = map(int, re.match(rf"{re.escape(name)}: (\d+)/(\d+), ", end[0]).groups())
    assert of == total, end[0]
    return total, done


def test_every_phase_before_the_first_step_shows_its_name_and_count(forged_off_a_terminal):
    lines, smith = forged_off_a_terminal["lines"], forged_off_a_terminal["smith"]
    held = sum(len(pairs) for pairs in smith.held.values())
    assert started_and_ended(lines, "held-out task families")[0] >= held > 0
    assert started_and_ended(lines, "replay task families")[1] > 0
    prompts = len(smith.replay_prompts)
    assert started_and_ended(lines, "replay: the base's answers") == (prompts, prompts)
    scored = len({r.task.digest for r in smith.replay_prompts if r.task is not None})
    assert started_and_ended(lines, "replay: scoring its answers") == (scored, scored)
    trained, done = started_and_ended(lines, "arithmetic: training task families")
    assert trained == done > 0
    others = sum(r.capability != "arithmetic" for r in smith.replay_prompts)
    assert started_and_ended(lines, "arithmetic: reading texts to protect") == (others, others)
    layers, done = started_and_ended(lines, "arithmetic: directions to protect")
    assert layers == done > 0
    tensors, done = started_and_ended(lines, "arithmetic: writing the expert")
    assert tensors == done > 0
    assert any(ln.startswith("replay: the base's answers to ") for ln in lines)  # announced before it starts
    order = [next(i for i, ln in enumerate(lines) if ln.startswith(what)) for what in (
        "held-out task families", "replay: the base's answers (", "forging arithmetic (4) ...",
        "arithmetic: training task families", "arithmetic: reading texts", "arithmetic: a training step",
        "arithmetic: writing the expert", "arithmetic: forged in ")]
    assert order == sorted(order), lines


def test_the_announced_duration_comes_from_the_measured_steps(forged_off_a_terminal):
    (said,) = [ln for ln in forged_off_a_terminal["lines"] if ln.startswith("arithmetic: a training step takes ")]
    assert re.fullmatch(r"arithmetic: a training step takes \d+\.\d s on this machine \(measured over steps 2-3; "
                        r"the preparation and step 1 took .+\): this expert ends in about .+", said), said


def test_estimate_follows_the_clock(monkeypatch):
    """Steps 3 s apart after 7 s of preparation: 3 s a step, 10 s to the end of step 1; the 2 steps left
    of this expert take 6 s, and the next one as long as this whole one (10 + 4 x 3 = 22 s). A slower
    clock says more."""
    for step_s, expected in ((3.0, ("3.0 s", "10.0 s", "6.0 s", "28.0 s")),
                             (30.0, ("30.0 s", "37.0 s", "1 min 0 s", "3 min 37 s"))):
        now = [0.0]
        monkeypatch.setattr(command.time, "monotonic", lambda: now[0])
        estimate = Estimate(steps=5, experts=2)
        estimate.start()
        said = []
        for step in range(1, 6):
            now[0] = 7.0 + step * step_s
            said.append(estimate.step(step))
        assert said[0] is None and said[1] is None and said[3:] == [None, None]
        assert said[2] == (f"a training step takes {expected[0]} on this machine (measured over steps 2-3; the "
                           f"preparation and step 1 took {expected[1]}): this expert ends in about {expected[2]}, "
                           f"the 2 experts left in about {expected[3]}")
        estimate.done(now[0])
        assert estimate.left == 1 and estimate.rest() == now[0]  # the next one: as long as the last


def test_too_few_steps_to_measure_announce_nothing(monkeypatch):
    for steps in (1, 2):
        estimate = Estimate(steps=steps, experts=1)
        estimate.start()
        assert [estimate.step(s) for s in range(1, steps + 1)] == [None] * steps


def test_phases_without_a_display_are_silent():
    with quiet("anything", 3) as advance:
        advance()
        advance(2)
    console, out = plain_console()
    with TickingProgress(console=console) as progress:
        with shown_on(progress, "x: ")("counting", 2) as advance:
            advance(2)
        assert progress.tasks == []
    assert out.getvalue().splitlines()[0] == "x: counting (2) ..."
    assert shown_on(None) is quiet


def test_first_run_announces_no_constant_duration(monkeypatch, tmp_path):
    """``forge_missing`` says the duration will be measured, and forges with the ETA display."""
    console, out = plain_console()
    monkeypatch.setattr(command, "console", console)
    calls = []
    class Smith:
        def __init__(self, hook, config, base, phase):
            self.base, self.phase = base, phase

        def shipped(self, cap):
            return None

    monkeypatch.setattr(command, "Forge", Smith)
    monkeypatch.setattr(command, "forge_experts", lambda smith, caps, progress: calls.append((smith, caps, progress)))
    config = load_config(None, [f"models.cache_dir={tmp_path}", "models.seeds=['forged:tinybase']"])
    command.forge_missing(config, hook=None)
    (said,) = out.getvalue().splitlines()
    assert "measured from the first training steps" in said and "min each" not in said, said
    (smith, caps, progress), = calls
    assert smith.base == "tinybase" and smith.phase is not quiet and caps == ["arithmetic", "strings", "code"]
    assert any(isinstance(c, TimeRemainingColumn) for c in progress.columns)
    assert any(isinstance(c, TimeRemainingColumn) for c in forge_progress().columns)


def test_first_run_says_which_experts_come_from_shipped_deltas(monkeypatch, tmp_path):
    console, out = plain_console()
    monkeypatch.setattr(command, "console", console)

    class Smith:
        def __init__(self, hook, config, base, phase):
            pass

        def shipped(self, cap):
            return tmp_path / f"{cap}.safetensors" if cap != "strings" else None

    monkeypatch.setattr(command, "Forge", Smith)
    monkeypatch.setattr(command, "forge_experts", lambda smith, caps, progress: None)
    command.forge_missing(load_config(None, [f"models.cache_dir={tmp_path}", "models.seeds=['forged:b']"]), None)
    (said,) = out.getvalue().splitlines()
    assert said == ("seed forged:b: no expert of b in the cache yet; rebuilding arithmetic, code from the deltas "
                    "shipped with the forge; forging strings (how long, measured from the first training steps, is "
                    "said then); once: cached for later runs (forge.forge_missing=false skips this)")
