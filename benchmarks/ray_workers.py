"""Wall time of a short coevolution on the Ray executor with 1 and with 2 local workers.

Usage: python benchmarks/ray_workers.py [--generations 1] [--offspring 4]

Runs the same short run (tiny llama seeds built here with the SmolLM2
tokenizer, or ``--smollm2`` for the real model) on a local Ray cluster with
``ray.workers`` = 1 and then 2, each worker one CPU, and prints the wall time
of each and the ratio. Both runs must reach the same archive.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_tiny_model, tiny_overrides  # noqa: E402

from acdc_engine.config import load_config  # noqa: E402
from acdc_engine.run.loop import Coevolution  # noqa: E402
from acdc_engine.plugin_manager import PluginContext  # noqa: E402
from acdc_engine.plugins.seed_models import smollm2  # noqa: E402
from acdc_engine.store import RunStore  # noqa: E402


def timed_run(overrides: list[str], run_dir: Path):
    config = load_config(None, overrides)
    store = RunStore.create(run_dir, config.model_dump_json())
    t0 = time.perf_counter()
    with PluginContext(config) as plugins:
        evo = Coevolution(config, store, plugins)
        try:
            evo.run()
        finally:
            evo.close()
    wall = time.perf_counter() - t0
    archive = store.generation(config.run.generations)["archive"]
    store.close()
    return wall, archive


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generations", type=int, default=1)
    ap.add_argument("--offspring", type=int, default=4)
    ap.add_argument("--smollm2", action="store_true", help="the real SmolLM2 seed instead of tiny models")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="acdc-ray-bench-"))
    smol = smollm2.acdc_resolve_seed(spec="smollm2", cache_dir=Path("~/.cache/acdc-engine").expanduser())
    models = {"a": make_tiny_model(tmp / "a", smol, seed=1), "b": make_tiny_model(tmp / "b", smol, seed=2)}
    extra = {"run.generations": args.generations, "evolution.offspring_per_generation": args.offspring,
             "evolution.initial_population": args.offspring, "evolution.archive_size": args.offspring,
             "tasks.instances_per_family": 3, "generation.max_new_tokens": 16, "run.executor": "ray",
             "ray.cpus_per_worker": 1.0}
    if args.smollm2:
        extra.update({"models.seeds": [str(smol)], "models.base": str(smol), "merge.keep_rank": 64,
                      "generation.dtype": "bfloat16"})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    walls, archives = {}, {}
    for workers in (1, 2):
        overrides = tiny_overrides(models, tmp / f"w{workers}", **extra, **{"ray.workers": workers})
        walls[workers], archives[workers] = timed_run(overrides, tmp / f"run-{workers}")
        print(f"{workers} worker(s): {walls[workers]:.1f} s")
    ray.shutdown()
    print(f"speed-up 2 vs 1 workers: {walls[1] / walls[2]:.2f}x; same archive: {archives[1] == archives[2]}")


if __name__ == "__main__":
    main()
