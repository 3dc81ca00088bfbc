"""kill -9 during a generation, then resume: nothing committed is lost, weight files included."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

from acdc_engine.digest import file_digest
from conftest import tiny_overrides

GENERATIONS = 3


def snapshot(db_path, upto: int):
    db = sqlite3.connect(db_path)
    try:
        return {
            # status and fitness of a model change as later generations evict it; its digest never does
            "models": db.execute("SELECT id, recipe, parents, generation, digest FROM models WHERE generation<=? "
                                 "ORDER BY id", (upto,)).fetchall(),
            "tasks": db.execute("SELECT id, name, source, instances FROM tasks WHERE generation<=? ORDER BY id",
                                (upto,)).fetchall(),
            "generations": db.execute("SELECT * FROM generations WHERE generation<=? ORDER BY 1", (upto,)).fetchall(),
            "evaluations": db.execute("SELECT model_id, task_id, score FROM evaluations WHERE generation<=? "
                                      "ORDER BY 1, 2", (upto,)).fetchall(),
        }
    finally:
        db.close()


def committed(db_path) -> int:
    if not db_path.exists():
        return -1
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT COALESCE(MAX(generation), -1) FROM generations").fetchone()[0]
    except sqlite3.OperationalError:
        return -1
    finally:
        db.close()


def test_kill_9_mid_generation_then_resume(tiny_models, tmp_path):
    run_dir = tmp_path / "run"
    # a strict disk budget with room for one child (seeds are not counted): other members are evicted, even
    # those the next generation reads (store.keep_next_reads off), and rebuilt
    budget = math.ceil(1.5 * (tiny_models["a"] / "model.safetensors").stat().st_size / 2**20)
    sets = tiny_overrides(tiny_models, tmp_path, **{"run.generations": GENERATIONS, "store.weights_budget_mb": budget,
                                                     "store.keep_next_reads": False})
    args = [sys.executable, "-m", "acdc_engine", "run", "--run-dir", str(run_dir)]
    args += [a for s in sets for a in ("--set", s)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = run_dir / "run.sqlite"
    deadline = time.monotonic() + 240
    while committed(db_path) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    last = committed(db_path)
    assert 1 <= last < GENERATIONS, "the kill should land inside the run"
    before = snapshot(db_path, last)

    resumed = subprocess.run([sys.executable, "-m", "acdc_engine", "resume", str(run_dir)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert committed(db_path) == GENERATIONS
    assert snapshot(db_path, last) == before  # committed work untouched
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT COUNT(*) FROM task_force").fetchone()[0] == 1
    # no stray weights: only the files the store lists, each named by its content, within the budget
    files = {p.stem: file_digest(p) for p in (run_dir / "weights").glob("*.safetensors")}
    kept = {r[0] for r in db.execute("SELECT digest FROM weight_files")}
    assert files == {d: d for d in kept} and not list((run_dir / "weights" / "staging").iterdir())
    assert db.execute("SELECT SUM(size) FROM weight_files WHERE seed = 0").fetchone()[0] <= budget * 2**20
    stats = [json.loads(r[0]) for r in db.execute("SELECT stats FROM generations")]
    assert sum(s["weights_evicted"] for s in stats) > 0 and sum(s["weights_rebuilt"] for s in stats) > 0

    status = subprocess.run([sys.executable, "-m", "acdc_engine", "status", str(run_dir)],
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and f"generation {GENERATIONS} of {GENERATIONS}" in status.stdout
    assert "task force" in status.stdout
