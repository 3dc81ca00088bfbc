"""``acdc-engine forge`` (added through the ``acdc_commands`` hook), and the first run's forging of the
default experts (``acdc_prepare_run``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from acdc_engine.api import (FORGED_PREFIX, TickingProgress, command_config, config_options, configured_plugins,
                             quiet_libraries)
from acdc_engine.plugins.forge.cache import Forge
from acdc_engine.plugins.forge.compare import compare, forge_table
from acdc_engine.plugins.forge.data import DEFAULT_CAPABILITIES, parse_capabilities
from acdc_engine.plugins.forge.seeds import experts as forged_experts
from acdc_engine.plugins.forge.training import ForgeRecipe

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
@click.option("--force", is_flag=True, help="Forge again even if the cache holds these experts.")
@click.option("--no-eval", is_flag=True, help="Skip the comparison on held-out tasks.")
@config_options
def forge(base, capabilities, steps, lr, rank, protect_energy, force, no_eval, config_file, overrides):
    """Make seed experts from a base model: a short LoRA fine-tune per capability.

    Experts are cached (forged again only with --force or other settings) and
    resolve as the seed spec forged:BASE, which the default config uses.
    """
    quiet_libraries()
    config = command_config(config_file, overrides)
    recipe = ForgeRecipe(steps=steps, lr=lr, rank=rank, protect_energy=protect_energy or None)
    try:
        with configured_plugins(config) as pm, TickingProgress(console=console, transient=True) as progress:
            hook = pm.hook
            caps = parse_capabilities(hook, capabilities)
            smith = Forge(hook, config, base=base, recipe=recipe)
            made = {f"{cap} expert": (cap, done.path)
                    for cap, done in forge_experts(smith, caps, progress, force=force).items()}
            if no_eval:
                return
            held = smith.held
            models = {"base": smith.base_dir, **{name: d for name, (_, d) in made.items()}}
            task = progress.add_task("evaluating on held-out tasks",
                                     total=len(models) * sum(len(i) for pairs in held.values() for _, i in pairs))
            rates = compare(hook, config, models, held, on_batch=lambda n: progress.advance(task, n))
            progress.remove_task(task)
    except KeyboardInterrupt:
        console.print("interrupted; no half-written expert is left in the cache", highlight=False)
        sys.exit(130)
    console.print(forge_table(rates, held, {name: cap for name, (cap, _) in made.items()}))


def forge_experts(smith: Forge, caps: list[str], progress: TickingProgress, *, force: bool = False) -> dict:
    """Each capability's expert, from the cache or forged now, with a bar per step and a line per expert."""
    if not smith.replay_file.is_file() and any(force or not smith.cached(c) for c in caps):
        task = progress.add_task("replay: the base's answers", total=len(smith.replay_prompts))
        smith.replay(on_batch=lambda n: progress.advance(task, n))
        progress.remove_task(task)
    out = {}
    for cap in caps:
        task = progress.add_task(f"forging {cap}", total=smith.recipe.steps)

        def on_step(step, loss, task=task, cap=cap):
            progress.update(task, completed=step, description=f"forging {cap} (loss {loss:.3f})")

        out[cap] = done = smith.forge(cap, force=force, on_step=on_step)
        progress.remove_task(task)
        how = f"cached (forged in {_duration(done.seconds)})" if done.cached else f"forged in {_duration(done.seconds)}"
        progress.console.print(f"{cap}: {how}: {done.path}", highlight=False)
    return out


def forge_missing(config, hook) -> None:
    """Forges the default experts of every ``forged:BASE`` seed group that has none yet (the first run)."""
    cache = Path(config.models.cache_dir).expanduser()
    for spec in config.models.seeds:
        base = spec[len(FORGED_PREFIX):]
        if not spec.startswith(FORGED_PREFIX) or ":" in base or forged_experts(cache, base):
            continue
        quiet_libraries()
        console.print(f"seed {spec}: no expert forged from {base} yet; forging {', '.join(DEFAULT_CAPABILITIES)} "
                      "once (about 4 min each on 2 cores; cached for later runs; models.forge_missing=false "
                      "skips this)", highlight=False)
        try:
            with TickingProgress(console=console, transient=True) as progress:
                forge_experts(Forge(hook, config, base=base), list(DEFAULT_CAPABILITIES), progress)
        except KeyboardInterrupt:
            console.print("interrupted; the experts forged so far are cached, no half-written one is left",
                          highlight=False)
            sys.exit(130)


def _duration(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s" if seconds >= 60 else f"{seconds:.1f} s"
