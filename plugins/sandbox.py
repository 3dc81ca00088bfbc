"""Built-in plugin ``sandbox`` (always on): runs task-family code out of process.

Every call to task code (``get_tasks``, ``get_instructions``, ``score``) runs
in a fresh ``python -I -S`` subprocess of ``sandbox_runner.py`` with:
a wall-clock timeout (the whole process group is killed), rlimits that the
runner sets on itself before loading task code (address space, CPU seconds,
file size, open files, core dumps), an empty
environment, and a private temporary working directory that is removed
afterwards. Calls for one family are batched into one process.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from acdc_engine.hookspecs import hookimpl
from acdc_engine.tasks import Instance, TaskCodeError

RUNNER = Path(__file__).with_name("sandbox_runner.py")
REPLY_LIMIT = 16 * 1024 * 1024


def run_task_code(source: str, calls: list[dict], *, timeout_s: float, memory_mb: int) -> list:
    """Runs ``calls`` against a family's source in a limited subprocess.

    Returns the list of results; raises :class:`TaskCodeError` with a one-line
    reason if the code fails, hangs, or dies.
    """
    payload = json.dumps({"source": source, "calls": calls})
    with tempfile.TemporaryDirectory(prefix="acdc-sandbox-") as workdir:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(RUNNER), str(memory_mb), str(math.ceil(timeout_s))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir},
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(payload.encode(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise TaskCodeError(f"timed out after {timeout_s:g} s") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        hint = " (CPU time limit)" if name == "SIGXCPU" else ""
        raise TaskCodeError(f"killed by {name}{hint}")
    if len(out) > REPLY_LIMIT:
        raise TaskCodeError(f"reply larger than {REPLY_LIMIT} bytes")
    try:
        reply = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TaskCodeError(f"no valid reply (exit status {proc.returncode})") from None
    if not reply.get("ok"):
        raise TaskCodeError(reply.get("error", "failed"))
    return reply["results"]


@hookimpl
def acdc_task_instances(task, limits):
    """Runs ``get_tasks()`` and ``get_instructions()`` for every instance."""
    (tasks,) = run_task_code(task.source, [{"op": "tasks"}], timeout_s=limits.timeout_s, memory_mb=limits.memory_mb)
    keys = list(tasks)
    calls = [{"op": "instructions", "t": tasks[k]} for k in keys]
    texts = run_task_code(task.source, calls, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb)
    return [Instance(key=k, instruction=text, data=tasks[k]) for k, text in zip(keys, texts)]


@hookimpl
def acdc_score_submissions(task, instances, submissions, limits):
    """Runs ``score(t, submission)`` for every instance in one process."""
    calls = [{"op": "score", "t": inst.data, "submission": sub} for inst, sub in zip(instances, submissions)]
    return run_task_code(task.source, calls, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb)


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


def program_passes(program: str, *, timeout_s: float, memory_mb: int) -> bool:
    """Whether a Python program (e.g. a completion followed by its tests) runs
    to the end without raising, in the same limited subprocess as task code."""
    try:
        run_task_code(_PROGRAM_FAMILY, [{"op": "score", "t": {}, "submission": program}],
                      timeout_s=timeout_s, memory_mb=memory_mb)
    except TaskCodeError:
        return False
    return True
