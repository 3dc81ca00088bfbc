"""Forge seed experts of SmolLM2 for real, time them and compare them with the base.

Usage: python benchmarks/forge.py [--keep] [--capabilities arithmetic,strings,code] [--recipe JSON]

Forges (again, unless ``--keep``) one expert per capability (default: the
default ones) with the default recipe, or with the ``ForgeRecipe`` fields
given as a JSON object (``--recipe '{"seed": 1}'``), into the user cache,
exactly as ``acdc-engine forge`` does, and prints the time of the shared
replay data, each expert's wall time (training data + LoRA training + merge +
save) with the load average around it, and the held-out table (pass rate %
per capability; * own capability).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from acdc_engine.ui.commands import quiet_libraries
from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError
from acdc_engine.plugin_manager import PluginContext
from acdc_engine.plugins.forge.cache import Forge
from acdc_engine.plugins.forge.compare import compare, forge_table
from acdc_engine.plugins.forge.data import DEFAULT_CAPABILITIES, parse_capabilities
from acdc_engine.plugins.forge.training import ForgeRecipe
from rich.console import Console


def load() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


def main(force: bool, capabilities: str, recipe: ForgeRecipe) -> None:
    quiet_libraries()
    console = Console()
    config = load_config()
    with PluginContext(config) as plugins:  # taskgen's procedural families among them
        hook = plugins.hook
        capabilities = parse_capabilities(hook, capabilities)
        smith = Forge(hook, config, recipe=recipe)
        started = time.monotonic()
        smith.replay()
        console.print(f"replay data (base answers to {len(smith.replay_prompts)} prompts, once per base): "
                      f"{time.monotonic() - started:.1f} s ({load()})")
        experts = {}
        for cap in capabilities:
            before = load()
            done = smith.forge(cap, force=force)
            experts[f"{cap} expert"] = (cap, done.path)
            console.print(f"{cap}: {'cached, forged' if done.cached else 'forged'} in {done.seconds:.1f} s "
                          f"(before: {before}; after: {load()})")
        started = time.monotonic()
        held = smith.held
        models = {"base": smith.base_dir, **{name: d for name, (_, d) in experts.items()}}
        rates = compare(hook, config, models, held)
        console.print(forge_table(rates, held, {name: cap for name, (cap, _) in experts.items()}))
        console.print(f"evaluation: {time.monotonic() - started:.1f} s for {len(models)} models ({load()})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="reuse cached experts (table only)")
    ap.add_argument("--capabilities", default=",".join(DEFAULT_CAPABILITIES), help="comma-separated, one expert each")
    ap.add_argument("--recipe", default="{}", help="ForgeRecipe fields as a JSON object, e.g. '{\"seed\": 1}'")
    args = ap.parse_args()
    try:
        recipe = ForgeRecipe(**json.loads(args.recipe))
    except (AcdcError, TypeError, ValueError) as e:  # ValueError: bad JSON; TypeError: unknown field
        ap.error(str(e) if isinstance(e, AcdcError) else f"--recipe {args.recipe}: {e}")
    try:
        main(force=not args.keep, capabilities=args.capabilities, recipe=recipe)
    except AcdcError as e:
        ap.error(str(e))
