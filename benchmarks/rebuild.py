"""What a weights budget costs: rebuilding evicted members from their recipes.

Usage: python benchmarks/rebuild.py RUN_DIR [--models N]

A run with ``store.weights_budget_mb`` keeps only some members' files and
rebuilds the others from their ancestry when they are needed (as a parent,
for the task force, for ``export``). This takes a finished run, builds a view
of it that keeps the seeds' files alone (the worst case: every non-seed
ancestor evicted), and rebuilds up to ``--models`` of its newest models
there, each checked against its recorded digest. It prints, per model, the
materialisations its rebuild needed and the seconds it took, then the mean
seconds per materialisation (the cost of one evicted parent whose own
parents are kept), and the folder's size as the run keeps it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path


def seeds_only_view(run_dir: Path, into: Path) -> Path:
    """A copy of the run's store whose weights folder holds the seeds' files alone (hard links)."""
    from acdc_engine.store import RunStore

    view = into / "run"
    (view / "weights").mkdir(parents=True)
    source = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    target = sqlite3.connect(view / "run.sqlite")
    source.backup(target)
    source.close()
    seeds = [r[0] for r in target.execute("SELECT digest FROM weight_files WHERE seed = 1")]
    target.close()
    store = RunStore.open(run_dir)
    try:
        for digest in seeds:
            os.link(store.weights_path(digest), view / "weights" / f"{digest}.safetensors")
    finally:
        store.close()
    return view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--models", type=int, default=4, help="Newest non-seed models to rebuild.")
    args = parser.parse_args()

    from acdc_engine.ui.commands import quiet_libraries
    from acdc_engine.models.lineage import rebuild_weights
    from acdc_engine.plugin_manager import PluginContext
    from acdc_engine.recipe import Recipe
    from acdc_engine.models.seed_resolution import resolve_seeds
    from acdc_engine.store import RunStore

    quiet_libraries()
    store = RunStore.open(args.run_dir)
    usage = store.disk_usage()
    store.close()
    print(f"run {args.run_dir}: {usage['own_bytes'] / 2**30:.2f} GiB of its own, "
          f"{usage['shared_bytes'] / 2**30:.2f} GiB shared by hard link; models kept as files "
          f"{usage['models_as_files']}, as recipes only {usage['models_as_recipes']}")
    scratch = Path(tempfile.mkdtemp(prefix="acdc-rebuild-bench-"))
    try:
        view = RunStore.open(seeds_only_view(args.run_dir, scratch))
        config = view.config()
        rows = [r for r in view.models() if not Recipe.from_json(r["recipe"]).is_seed]
        chosen = sorted(rows, key=lambda r: (r["generation"], r["id"]))[-args.models:]
        total_s = total_steps = 0
        with PluginContext(config) as plugins:
            _, base_dir = resolve_seeds(plugins.hook, config.models)
            for row in chosen:
                steps: list[int] = []
                started = time.monotonic()
                rebuild_weights(view, row["id"], hook=plugins.hook, base_file=base_dir / "model.safetensors",
                                out_file=scratch / f"{row['id']}.safetensors",
                                on_built=lambda done, total: steps.append(total))
                seconds = time.monotonic() - started
                total_s, total_steps = total_s + seconds, total_steps + len(steps)
                print(f"  {row['id']} (generation {row['generation']}): {len(steps)} materialisations, "
                      f"{seconds:.1f} s (digest checked)", flush=True)
                (scratch / f"{row['id']}.safetensors").unlink()
        view.close()
        print(f"mean {total_s / max(total_steps, 1):.1f} s per materialisation "
              f"({total_steps} in {total_s:.1f} s): the cost of one evicted parent whose parents are kept")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    from acdc_engine.errors import AcdcError

    try:
        main()
    except AcdcError as exc:
        raise SystemExit(f"error: {exc}") from None
