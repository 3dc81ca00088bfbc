"""Runs untrusted task-family code; executed as a script in a limited process.

Reads one JSON request on stdin: ``{"source": str, "calls": [call, ...]}``
where a call is ``{"op": "tasks"}``, ``{"op": "instructions", "t": ...}`` or
``{"op": "score", "t": ..., "submission": str}``. Writes one JSON reply on the
original stdout: ``{"ok": true, "results": [...]}`` or
``{"ok": false, "error": "one line"}``. The task code's own prints go nowhere.
Usage: ``python -I -S sandbox_runner.py MEMORY_MB CPU_SECONDS``. Standard
library only.
"""

import json
import os
import resource
import sys


def _limit_self(memory_mb, cpu_s):
    """Caps this process before any task code runs (limits survive exec)."""
    for name, value in (
        ("RLIMIT_AS", memory_mb * 1024 * 1024),
        ("RLIMIT_CPU", cpu_s),
        ("RLIMIT_FSIZE", 1 << 20),
        ("RLIMIT_NOFILE", 32),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def _reply(out, payload):
    out.write(json.dumps(payload))
    out.flush()


def _check_score(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError(f"score() returned {type(value).__name__}, not a number or None")
    return float(value)


def main():
    request = json.loads(sys.stdin.read())
    _limit_self(int(sys.argv[1]), int(sys.argv[2]))
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    namespace = {"__name__": "task_family"}
    stage = "loading the source"
    try:
        exec(compile(request["source"], "<task family>", "exec"), namespace)
        family = namespace.get("TaskFamily")
        if family is None:
            raise NameError("the source defines no class TaskFamily")
        results = []
        for call in request["calls"]:
            stage = f"{call['op']}()"
            if call["op"] == "tasks":
                stage = "get_tasks()"
                tasks = family.get_tasks()
                if not isinstance(tasks, dict) or not tasks:
                    raise TypeError("get_tasks() must return a non-empty dict")
                results.append(json.loads(json.dumps({str(k): v for k, v in tasks.items()})))
            elif call["op"] == "instructions":
                stage = "get_instructions()"
                text = family.get_instructions(call["t"])
                if not isinstance(text, str) or not text.strip():
                    raise TypeError("get_instructions() must return a non-empty str")
                results.append(text)
            elif call["op"] == "score":
                stage = "score()"
                results.append(_check_score(family.score(call["t"], call["submission"])))
            else:
                raise ValueError(f"unknown op {call['op']!r}")
    except BaseException as exc:  # noqa: BLE001 - anything task code does is reported
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        _reply(out, {"ok": False, "error": f"{stage} raised {type(exc).__name__}: {message}".rstrip(": ")})
        return
    _reply(out, {"ok": True, "results": results})


if __name__ == "__main__":
    main()
