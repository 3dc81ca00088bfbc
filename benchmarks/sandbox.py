"""Latency of one ``score()`` call through the sandbox, warm pool vs fresh processes.

Usage: python benchmarks/sandbox.py [CALLS]   (default 200 calls per way)

Scores one submission with a real procedural task family (the first of the
``taskgen`` initial pool) in four ways, in the same run: through the warm
worker pool under bubblewrap, through the warm pool with rlimits only,
through a fresh bubblewrap worker per call, and through a fresh plain
subprocess per call (the sandbox before the pool). Prints the median and
p95 latency of each in milliseconds and the ratios to the warm pool.
"""

from __future__ import annotations

import statistics
import sys
import time

from acdc_engine.plugins.sandbox import sandbox_plugin as sandbox
from acdc_engine.plugins.sandbox.sandbox_jail import bubblewrap_problem, launch_for
from acdc_engine.plugins.sandbox.sandbox_pool import Worker
from acdc_engine.plugins.taskgen import acdc_generate_tasks
from acdc_engine.tasks import TaskRequest

MEMORY_MB, TIMEOUT_S = 512, 10.0


def timed(fn, calls: int) -> list[float]:
    fn()  # warm-up: starts the pool's worker, compiles the family
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def fresh(isolation: str, batch: list[dict], source: str):
    """One call in a worker started for it, as the sandbox did before the pool."""
    launch = launch_for(isolation, MEMORY_MB)

    def call():
        worker = Worker(launch)
        try:
            worker.run({"id": 1, "source": source, "calls": batch, "cpu_s": 10},
                       timeout_s=TIMEOUT_S, judge=None, judge_budget=0)
        finally:
            worker.kill()
    return call


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    (spec, *_) = acdc_generate_tasks(request=TaskRequest("initial", 1, 0, 3))
    (tasks,) = sandbox.run_task_code(spec.source, [{"op": "tasks"}], timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)
    key = next(iter(tasks))
    batch = [{"op": "score", "t": tasks[key], "submission": "42"}]
    ways = {"warm pool, rlimits": lambda: sandbox.run_task_code(spec.source, batch, timeout_s=TIMEOUT_S,
                                                                 memory_mb=MEMORY_MB, isolation="rlimits"),
            "fresh subprocess": fresh("rlimits", batch, spec.source)}
    problem = bubblewrap_problem()
    if problem is None:
        ways = {"warm pool, bubblewrap": lambda: sandbox.run_task_code(spec.source, batch, timeout_s=TIMEOUT_S,
                                                                        memory_mb=MEMORY_MB, isolation="bubblewrap"),
                **ways, "fresh bubblewrap": fresh("bubblewrap", batch, spec.source)}
    else:
        print(f"bubblewrap skipped: {problem}")
    print(f"family {spec.name!r}, {calls} calls each, one score() per call")
    print(f"{'way':24} {'median ms':>10} {'p95 ms':>10} {'x warm':>8}")
    base = None
    for name, fn in ways.items():
        ms = timed(fn, calls)
        median, p95 = statistics.median(ms), statistics.quantiles(ms, n=20)[18]
        base = base or median
        print(f"{name:24} {median:10.3f} {p95:10.3f} {median / base:8.1f}")
    sandbox.close_pools()


if __name__ == "__main__":
    main()
