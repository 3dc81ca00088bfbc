"""Built-in plugin ``sandbox`` (always on): runs task-family code out of process.

Every batch of calls to task code (``get_tasks``, ``get_instructions``,
``score``) goes to a warm worker of a :class:`~sandbox_pool.WorkerPool`:
a long-lived ``python -I -S`` process under bubblewrap where it runs (see
``sandbox_jail.py``), else a plain rlimited subprocess, with rlimits and a
seccomp filter against new processes (``sandbox_worker.py``) and a
wall-clock limit per batch (``sandbox.timeout_s``). Task code may call
``judge(question, answer, rubric)``; the worker passes it to the engine,
which asks the ``acdc_judge`` hook (the relay of the plugin context that
runs the task, kept on its :class:`Sandbox` instance), at most
``sandbox.judge_budget`` times per batch. The warm pools are the process's;
they are closed by ``acdc_unconfigure`` (and reopen on next use) and at
interpreter exit.
"""

from __future__ import annotations

import atexit
import threading

from acdc_engine.api import Instance, TaskCodeError, hookimpl
from .sandbox_jail import launch_for
from .sandbox_pool import Judge, WorkerPool

POOL_SIZE = 2


class _Pools:
    """The open worker pools by (isolation, memory limit)."""

    def __init__(self) -> None:
        self.pools: dict[tuple[str, int], WorkerPool] = {}
        self.lock = threading.Lock()

    def get(self, isolation: str, memory_mb: int) -> WorkerPool:
        with self.lock:
            key = (isolation, memory_mb)
            if key not in self.pools:
                self.pools[key] = WorkerPool(launch=launch_for(isolation, memory_mb), size=POOL_SIZE)
            return self.pools[key]

    def close(self) -> None:
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            pool.close()


_POOLS = _Pools()
atexit.register(_POOLS.close)


def run_task_code(source: str, calls: list[dict], *, timeout_s: float, memory_mb: int, isolation: str = "auto",
                  judge: Judge | None = None, judge_budget: int = 8) -> list:
    """Runs ``calls`` against a family's source in a warm sandboxed worker.

    Returns the list of results; raises :class:`TaskCodeError` with a one-line
    reason if the code fails, hangs, dies or exceeds its judge budget.
    """
    return _POOLS.get(isolation, memory_mb).run(source, calls, timeout_s=timeout_s, judge=judge,
                                                 judge_budget=judge_budget)


def close_pools() -> None:
    """Kills every sandbox worker of this process (pools reopen on next use)."""
    _POOLS.close()


_PROGRAM_FAMILY = '''class TaskFamily:
    @staticmethod
    def get_tasks():
        return {"0": {}}

    @staticmethod
    def get_instructions(t):
        return "run a program"

    @staticmethod
    def score(t, submission):
        exec(compile(submission, "<program>", "exec"), {"__name__": "__program__"})
        return 1.0
'''


class Sandbox:
    """The plugin: one instance per plugin context, holding its judge relay."""

    judge: Judge | None = None

    def _run(self, task, calls: list[dict], limits) -> list:
        return run_task_code(task.source, calls, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb,
                             isolation=limits.isolation, judge=self.judge, judge_budget=limits.judge_budget)

    @hookimpl
    def acdc_configure(self, config, hook):
        """Relays task code's ``judge()`` calls to the ``acdc_judge`` hook."""
        self.judge = lambda question, answer, rubric: hook.acdc_judge(question=question, answer=answer,
                                                                       rubric=rubric)

    @hookimpl
    def acdc_unconfigure(self):
        """Kills the warm workers and forgets the judge relay."""
        self.judge = None
        _POOLS.close()

    @hookimpl
    def acdc_task_instances(self, task, limits):
        """Runs ``get_tasks()`` and ``get_instructions()`` for every instance."""
        (tasks,) = self._run(task, [{"op": "tasks"}], limits)
        keys = list(tasks)
        texts = self._run(task, [{"op": "instructions", "t": tasks[k]} for k in keys], limits)
        return [Instance(key=k, instruction=text, data=tasks[k]) for k, text in zip(keys, texts)]

    @hookimpl
    def acdc_score_submissions(self, task, instances, submissions, limits):
        """Runs ``score(t, submission)`` for every instance in one batch."""
        calls = [{"op": "score", "t": inst.data, "submission": sub} for inst, sub in zip(instances, submissions)]
        return self._run(task, calls, limits)

    @hookimpl
    def acdc_program_passes(self, program, limits):
        """Runs the program in the same limited subprocess as task code."""
        try:
            run_task_code(_PROGRAM_FAMILY, [{"op": "score", "t": {}, "submission": program}],
                          timeout_s=limits.timeout_s, memory_mb=limits.memory_mb, isolation=limits.isolation)
        except TaskCodeError:
            return False
        return True

