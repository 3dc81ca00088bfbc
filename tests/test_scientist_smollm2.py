"""The real SmolLM2-135M-Instruct as the scientist (local endpoint), for one adaptation with a tiny pool.

A 135M model mostly writes tasks that do not parse or do not run: the run
must reject them cleanly, record why, and go on.
"""

from __future__ import annotations

import sqlite3

import pytest

from acdc_engine.plugins.llm.llm_client import LocalChat
from conftest import run_in_process

CATEGORIES = ("unparseable", "failed in sandbox after", "not done after", "not novel", "failed in sandbox")


@pytest.mark.slow
def test_smollm2_scientist_tasks_are_vetted_and_rejects_recorded(smollm2_dir, tiny_config, tmp_path):
    config = tiny_config(**{
        "run.plugins": ["merge", "taskgen", "scientist"], "run.generations": 1, "tasks.initial_families": 1,
        "tasks.new_per_adaptation": 1, "llm.endpoint": "local", "llm.model": str(smollm2_dir),
        "llm.max_new_tokens": 64, "scientist.reflections": 1,
    })
    run_in_process(config, tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 1
    rows = db.execute("SELECT status, reason, source FROM tasks WHERE generator='scientist'").fetchall()
    assert len(rows) == 2  # one conversation at generation 0, one at the adaptation
    for status, reason, source in rows:
        assert source  # the code (or the raw reply) is kept for inspection
        if status == "rejected":
            assert reason.startswith(CATEGORIES), reason


@pytest.mark.slow
def test_local_chat_samples_reproducibly_and_greedy_is_deterministic(smollm2_dir):
    llm = LocalChat(smollm2_dir, temperature=1.0, max_tokens=8, dtype="float32")
    asks = [[{"role": "user", "content": "Name a colour."}]] * 4
    sampled = llm.chat(asks, seed=3)
    assert llm.chat(asks, seed=3) == sampled and len(set(sampled)) > 1
    greedy = llm.chat(asks[:2], temperature=0.0)
    assert greedy[0] == greedy[1] and llm.chat(asks[:1], temperature=0.0, seed=99) == greedy[:1]
