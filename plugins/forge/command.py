"""``acdc-engine forge`` (added through the ``acdc_commands`` hook), and the first run's forging of the
default experts (``acdc_prepare_run``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import TimeRemainingColumn

from acdc_engine.api import TickingProgress, file_digest, plugin_command
from .cache import Forge
from .compare import compare, forge_table
from .data import DEFAULT_CAPABILITIES, parse_capabilities
from .delta import read_delta
from .phases import shown_on
from .seeds import FORGED_PREFIX
from .seeds import experts as forged_experts
from .training import ForgeRecipe

console = Console(soft_wrap=True)


@click.command()
@click.option("--base", help="Base model spec (default: models.base).")
@click.option("--capabilities", default=",".join(DEFAULT_CAPABILITIES), show_default=True,
              help="Comma-separated capabilities of the procedural tasks, one expert each.")
@click.option("--steps", type=click.IntRange(min=1), default=ForgeRecipe.steps, show_default=True,
              help="Training steps per expert.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=ForgeRecipe.lr, show_default=True,
              help="Peak learning rate (decays linearly to 0).")
@click.option("--rank", type=click.IntRange(min=1), default=ForgeRecipe.rank, show_default=True, help="LoRA rank.")
@click.option("--protect-energy", type=click.FloatRange(min=0, max=1, max_open=True),
              default=ForgeRecipe.protect_energy, show_default=True,
              help="Keep the weight change off the input directions that carry this share of the energy of the "
                   "other capabilities' replayed texts (0: off).")
@click.option("--threads", type=click.IntRange(min=1), default=ForgeRecipe.threads, show_default=True,
              help="CPU threads of training (part of the recipe: the trained bits depend on it).")
@click.option("--force", is_flag=True, help="Forge again even if the cache holds these experts.")
@click.option("--no-eval", is_flag=True, help="Skip the comparison on held-out tasks.")
@plugin_command
def forge(plugins, base, capabilities, steps, lr, rank, protect_energy, threads, force, no_eval):
    """Make seed experts from a base model: a short LoRA fine-tune per capability.

    Experts are cached (forged again only with --force or other settings) and
    resolve as the seed spec forged:BASE, which the default config uses.
    """
    config, hook = plugins.config, plugins.hook
    recipe = ForgeRecipe(steps=steps, lr=lr, rank=rank, protect_energy=protect_energy or None, threads=threads)
    try:
        with forge_progress() as progress:
            caps = parse_capabilities(hook, capabilities)
            smith = Forge(hook, config, base=base, recipe=recipe, phase=shown_on(progress))
            made = {f"{cap} expert": (cap, done.path)
                    for cap, done in forge_experts(smith, caps, progress, force=force).items()}
            if no_eval:
                return
            held = smith.held
            models = {"base": smith.base_dir, **{name: d for name, (_, d) in made.items()}}
            task = progress.add_task("evaluating on held-out tasks",
                                     total=len(models) * sum(len(i) for pairs in held.values() for _, i in pairs))
            rates = compare(hook, config, models, held, on_batch=lambda n: progress.advance(task, n),
                            on_model=lambda name: progress.update(task, description=f"evaluating {name}"))
            progress.remove_task(task)
    except KeyboardInterrupt:
        console.print("interrupted; no half-written expert is left in the cache", highlight=False)
        sys.exit(130)
    console.print(forge_table(rates, held, {name: cap for name, (cap, _) in made.items()}))


def forge_progress() -> TickingProgress:
    """The forge's display: the API's progress (plain lines off a terminal) with an ETA column (a narrower
    bar, so that a phase's name, count, elapsed time and ETA fit 80 columns); its ETAs come from the speed
    of the last 5 minutes (a training step can take longer than Rich's 30 s)."""
    progress = TickingProgress(console=console, transient=True, bar_width=14)
    progress.columns = (*progress.columns, TimeRemainingColumn())
    progress.speed_estimate_period = 300.0
    return progress


def forge_experts(smith: Forge, caps: list[str], progress: TickingProgress, *, force: bool = False) -> dict:
    """Each capability's expert, from the cache or forged now, with a bar per step and a line per expert;
    the replay first if it is missing (the work before and after the steps shows as ``smith``'s phases:
    make it with ``phase=shown_on(progress)``); once the first steps' speed is measured, a line says how
    long the forging left will take."""
    def say(text: str) -> None:
        progress.console.print(text, highlight=False, markup=False, emoji=False)

    left = [cap for cap in caps if force or not (smith.cached(cap) or smith.shipped(cap))]
    if left and not smith.replay_file.is_file():
        say(f"replay: the base's answers to {len(smith.replay_prompts)} prompts first, which the experts train on "
            "to keep what it could do (once per base, cached)")
        smith.replay()
    estimate = Estimate(smith.recipe.steps, len(left))
    out = {}
    for cap in caps:  # a bar of training steps only for those trained (a shipped one shows its writing)
        task = progress.add_task(f"forging {cap}", total=smith.recipe.steps) if cap in left else None
        estimate.start()

        def on_step(step, loss, task=task, cap=cap):
            progress.update(task, completed=step, description=f"forging {cap} (loss {loss:.3f})")
            if announced := estimate.step(step):
                say(f"{cap}: {announced}")

        out[cap] = done = smith.forge(cap, force=force, on_step=on_step)
        if task is not None:
            progress.remove_task(task)
        if done.shipped:
            how = f"rebuilt in {_duration(done.seconds)} from the delta shipped with the forge"
        elif done.cached:
            how = f"cached (forged in {_duration(done.seconds)})"
        else:
            how = f"forged in {_duration(done.seconds)}" + _against_shipped(smith, cap, done.path)
            estimate.done(done.seconds)
        rest = (f"; {estimate.left} more to forge, about {_duration(estimate.rest())} (each as long as the last)"
                if estimate.left and estimate.forged else "")
        say(f"{cap}: {how}: {done.path}" + rest)
    return out


class Estimate:
    """How long the forging of ``experts`` experts of ``steps`` training steps each will take, measured on
    this machine: the seconds a step takes over the first steps after step 1 (which also warms up), the
    time to the end of step 1 (the preparation included), and the whole forges that have ended."""

    def __init__(self, steps: int, experts: int) -> None:
        self.steps, self.left = steps, experts
        self.forged: list[float] = []  # seconds of each whole forge ended
        self.started, self.stamps = time.monotonic(), []

    def start(self) -> None:
        """An expert's forge starts."""
        self.started, self.stamps = time.monotonic(), []

    def step(self, step: int) -> str | None:
        """Its training step ``step`` ended: once, when the speed is measured (after step 2 or 3, if a step
        is left; step 1 also warms up, so it is not counted), what it is and when the forging ends."""
        self.stamps.append(time.monotonic())
        at = min(3, self.steps - 1)
        if at < 2 or step != at or len(self.stamps) != at:
            return None
        step_s = (self.stamps[-1] - self.stamps[0]) / (at - 1)
        first_s = self.stamps[0] - self.started  # the preparation and step 1
        this = (self.steps - at) * step_s
        each = self.forged[-1] if self.forged else first_s + (self.steps - 1) * step_s
        span = "step 2" if at == 2 else f"steps 2-{at}"
        text = (f"a training step takes {step_s:.1f} s on this machine (measured over {span}; the preparation "
                f"and step 1 took {_duration(first_s)}): this expert ends in about {_duration(this)}")
        if self.left > 1:
            text += f", the {self.left} experts left in about {_duration(this + (self.left - 1) * each)}"
        return text

    def done(self, seconds: float) -> None:
        """A forge ended in ``seconds``."""
        self.forged.append(seconds)
        self.left -= 1

    def rest(self) -> float:
        """The forges left, each as long as the last one that ended (0 before one has)."""
        return self.left * self.forged[-1] if self.forged else 0.0


def _against_shipped(smith: Forge, cap: str, path: Path) -> str:
    """Whether a forged expert is the one shipped for these inputs, bit for bit (nothing if none is)."""
    if (delta := smith.shipped(cap)) is None:
        return ""
    if file_digest(path / "model.safetensors") == read_delta(delta)[2]:
        return " (bit for bit the shipped expert)"
    return (" (its weights differ from the shipped expert's: another kind of CPU, or other versions of torch and "
            "peft, train to other bits)")


def forge_missing(config, hook) -> None:
    """Forges the default experts of every ``forged:BASE`` seed group that has none yet (the first run)."""
    cache = Path(config.models.cache_dir).expanduser()
    for spec in config.models.seeds:
        base = spec[len(FORGED_PREFIX):]
        if not spec.startswith(FORGED_PREFIX) or ":" in base or forged_experts(cache, base):
            continue
        try:
            with forge_progress() as progress:
                smith = Forge(hook, config, base=base, phase=shown_on(progress))
                progress.console.print(_first_run_plan(spec, base, smith), highlight=False, markup=False,
                                       emoji=False)
                forge_experts(smith, list(DEFAULT_CAPABILITIES), progress)
        except KeyboardInterrupt:
            console.print("interrupted; the experts forged so far are cached, no half-written one is left",
                          highlight=False)
            sys.exit(130)


def _first_run_plan(spec: str, base: str, smith: Forge) -> str:
    """What the first run does for a seed group with no expert: which default experts it rebuilds from the
    deltas shipped with the forge (seconds each), and which it forges (how long is measured then)."""
    shipped = [cap for cap in DEFAULT_CAPABILITIES if smith.shipped(cap)]
    forged = [cap for cap in DEFAULT_CAPABILITIES if cap not in shipped]
    plan = []
    if shipped:
        plan.append(f"rebuilding {', '.join(shipped)} from the deltas shipped with the forge")
    if forged:
        plan.append(f"forging {', '.join(forged)} (how long, measured from the first training steps, is said then)")
    return (f"seed {spec}: no expert of {base} in the cache yet; {'; '.join(plan)}; once: cached for later runs "
            "(forge.forge_missing=false skips this)")


def _duration(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s" if seconds >= 60 else f"{seconds:.1f} s"
