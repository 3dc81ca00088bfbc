"""Forge the default seed experts of SmolLM2 for real, time them and compare them with the base.

Usage: python benchmarks/forge.py [--keep]

Forges (again, unless ``--keep``) one expert per default capability with the
default recipe into the user cache, exactly as ``acdc-engine forge`` does,
and prints the time of the shared replay data, each expert's wall time
(training data + LoRA training + merge + save) with the load average around
it, and the held-out table (pass rate % per capability; * own capability).
"""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console

from acdc_engine.cli import _quiet_libraries, forge_table
from acdc_engine.config import load_config
from acdc_engine.forge import DEFAULT_CAPABILITIES, Forge, compare
from acdc_engine.plugin_manager import build_plugin_manager


def load() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


def main(force: bool) -> None:
    _quiet_libraries()
    console = Console()
    config = load_config()
    hook = build_plugin_manager([]).hook
    smith = Forge(hook, config)
    started = time.monotonic()
    smith.replay()
    console.print(f"replay data (base answers to {len(smith.replay_prompts)} prompts, once per base): "
                  f"{time.monotonic() - started:.1f} s ({load()})")
    experts = {}
    for cap in DEFAULT_CAPABILITIES:
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
    main(force="--keep" not in sys.argv[1:])
