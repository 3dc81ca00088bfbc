"""One real generation of the real SmolLM2-135M-Instruct, with a tiny pool."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_smollm2_one_generation(smollm2_dir, tmp_path):
    sets = {
        "run.generations": "1", "run.output_dir": str(tmp_path / "runs"),
        "evolution.initial_population": "2", "evolution.offspring_per_generation": "1",
        "tasks.initial_families": "6", "tasks.instances_per_family": "1", "tasks.adapt_every": "1",
        "tasks.new_per_adaptation": "2", "generation.max_new_tokens": "24",
        "models.forge_missing": "false",  # forging the experts takes 12 min on 2 cores: tests/test_forge.py covers it
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    result = subprocess.run([sys.executable, "-m", "acdc_engine", "--plugins", "merge,taskgen", *args],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "task force" in result.stdout and "results:" in result.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    db = sqlite3.connect(run_dir / "run.sqlite")
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 1
    seed = db.execute("SELECT recipe FROM models WHERE id='m0001'").fetchone()[0]
    assert json.loads(seed)["seed_spec"] == "smollm2"
    answers = [json.loads(r[0]) for r in db.execute("SELECT answers FROM evaluations WHERE model_id='m0001'")]
    texts = [a["response"] for group in answers for a in group]
    # the real model answers in words, not noise
    assert len(texts) >= 6 and sum(any(c.isalpha() for c in t) for t in texts) >= len(texts) - 1
    force = db.execute("SELECT model_ids, coverage, seed_coverage FROM task_force").fetchone()
    assert len(json.loads(force[0])) >= 1 and force[1] >= force[2]
