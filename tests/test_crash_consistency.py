"""SIGKILL at seeded random moments, resume after each: the final store is the uninterrupted run's.

A tiny real run (subprocess, real SQLite file, real sandbox) is run once
without interruption and timed; a second copy of it is killed with SIGKILL
at 10 moments drawn with a fixed seed over the first 60 % of that duration (each kill lands
in a fresh process: the start, a step, a commit, the task force...), then
resumed until it finishes. Models, digests, evaluations, archive, tasks and
task force must be identical.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import tiny_overrides

KILLS, GENERATIONS = 10, 2


def store_contents(db_path) -> dict:
    db = sqlite3.connect(db_path)
    try:
        return {
            "models": db.execute("SELECT id, recipe, parents, generation, fitness, status, digest FROM models "
                                 "ORDER BY id").fetchall(),
            "tasks": db.execute("SELECT id, name, source, status, instances FROM tasks ORDER BY id").fetchall(),
            "evaluations": db.execute("SELECT model_id, task_id, score, answers FROM evaluations ORDER BY 1, 2"
                                      ).fetchall(),
            "archive": db.execute("SELECT generation, archive, active FROM generations ORDER BY 1").fetchall(),
            "task_force": db.execute("SELECT model_ids, coverage, seed_coverage, n_tasks FROM task_force").fetchall(),
        }
    finally:
        db.close()


def finished(db_path) -> bool:
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return False
    try:
        return db.execute("SELECT COUNT(*) FROM task_force").fetchone()[0] == 1
    except sqlite3.Error:
        return False
    finally:
        db.close()


def command(run_dir, sets) -> list[str]:
    if (run_dir / "run.sqlite").exists():
        return [sys.executable, "-m", "acdc_engine", "resume", str(run_dir)]
    return [sys.executable, "-m", "acdc_engine", "run", "--run-dir", str(run_dir), *[a for s in sets for a in ("--set", s)]]


def test_kill_9_at_ten_random_moments_gives_the_uninterrupted_store(tiny_models, tmp_path):
    sets = tiny_overrides(tiny_models, tmp_path, **{"run.generations": GENERATIONS})
    clean = tmp_path / "clean"
    started = time.monotonic()
    done = subprocess.run(command(clean, sets), capture_output=True, text=True, timeout=600)
    duration = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr

    run_dir = tmp_path / "killed"
    # each moment counts from a process's start; a resumed process has less left to do than a fresh one
    rng = random.Random(0)
    moments = [rng.uniform(0.5, 0.6 * duration) for _ in range(KILLS)]
    landed = 0
    for moment in moments:
        if finished(run_dir / "run.sqlite"):
            break
        proc = subprocess.Popen(command(run_dir, sets), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed += 1
        else:
            assert proc.returncode == 0
    assert landed >= KILLS // 2, f"only {landed} kills landed inside a run"
    while not finished(run_dir / "run.sqlite"):
        done = subprocess.run(command(run_dir, sets), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    assert store_contents(run_dir / "run.sqlite") == store_contents(clean / "run.sqlite")
    assert not list((run_dir / "weights" / "staging").iterdir())
