"""examples/acdc-example-plugin: pip-installed, found by entry point, and used
by a short coevolution (its task family joins the pool; children are SLERP merges)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import torch

from conftest import tiny_overrides

EXAMPLE = Path(__file__).parent.parent / "examples" / "acdc-example-plugin"


def test_example_package_runs_in_a_tiny_coevolution(tiny_models, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(EXAMPLE)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "250"}
    sets = tiny_overrides(tiny_models, tmp_path, **{"run.generations": 2, "evolution.crossover": "task_slerp",
                                                   "evolution.mutation": "none"})
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "acdc_engine", "run", "--run-dir", str(run_dir)]
    result = subprocess.run(args + [a for s in sets for a in ("--set", s)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    db = sqlite3.connect(run_dir / "run.sqlite")
    tasks = db.execute("SELECT status, source FROM tasks WHERE generator='letter-count'").fetchall()
    assert tasks and tasks[0][0] in ("active", "retired", "removed")  # ran cleanly in the sandbox
    recipes = [json.loads(r[0]) for r in db.execute("SELECT recipe FROM models WHERE generation > 0")]
    assert recipes and all(r["crossover"] == "task_slerp" and 0.3 <= r["crossover_params"]["t"] <= 0.7 for r in recipes)
    listing = subprocess.run([sys.executable, "-m", "acdc_engine", "plugins"], capture_output=True, text=True,
                             env=env)
    assert "entry point: acdc-example-plugin" in listing.stdout


def test_slerp_of_orthogonal_task_vectors_keeps_their_norm(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from acdc_example_plugin import task_slerp as slerp

    base = torch.zeros(2)
    mid = slerp("w", [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])], base, {"t": 0.5})
    assert torch.allclose(mid, torch.tensor([2 ** -0.5, 2 ** -0.5]))
    same = slerp("w", [torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])], base, {"t": 0.5})
    assert torch.allclose(same, torch.tensor([1.5, 1.5]))
