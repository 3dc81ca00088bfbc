"""The answer-speed benchmarks' prompts: the default task pool's instructions, built in the sandbox as the
run builds them (benchmarks/answer_speed.py, which benchmarks/backends.py also reads)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from answer_speed import instructions  # noqa: E402


def test_the_speed_benchmarks_ask_the_default_pools_instructions():
    texts = instructions(2)
    assert len(texts) == 6 and len(set(texts)) > 1 and all(isinstance(t, str) and len(t) > 10 for t in texts)
