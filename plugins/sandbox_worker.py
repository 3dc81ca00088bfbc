"""A long-lived worker that runs untrusted task-family code, inside the sandbox.

Started as ``python -I -S sandbox_worker.py MEMORY_MB``; standard library
only. Before any task code runs it moves its protocol pipes (the original
stdin and stdout) to private descriptors, points fds 0-2 at /dev/null (the
task code's prints go nowhere), caps itself with rlimits and a seccomp filter
that refuses new processes, and writes ``{"ready": true, "seccomp": bool}``.
Then it serves one JSON line per request::

    request  {"id": n, "digest": str, "source": str, "calls": [call, ...], "cpu_s": int}
    reply    {"id": n, "ok": true, "results": [...]}
           | {"id": n, "ok": false, "error": "one line"}

A call is ``{"op": "tasks"}``, ``{"op": "instructions", "t": ...}`` or
``{"op": "score", "t": ..., "submission": str}``. A family's source is run
once and its namespace cached by digest. Task code may call the global
``judge(question, answer, rubric)``: the worker writes
``{"id": n, "judge": [question, answer, rubric]}`` and reads back
``{"value": float}`` or ``{"error": str}``.
"""

import ctypes
import json
import os
import platform
import resource
import shutil
import signal
import struct
import sys
from collections import OrderedDict

CACHE_SIZE = 32
CLONE_THREAD = 0x00010000
# machine: (audit arch, clone, fork-like syscalls, clone3, has the x32 ABI)
SYSCALLS = {
    "x86_64": (0xC000003E, 56, (57, 58), 435, True),
    "aarch64": (0xC00000B7, 220, (), 435, False),
}


def _seccomp_program(arch, clone, forks, clone3, x32):
    """A classic-BPF seccomp filter: no fork, vfork or clone except threads.

    clone3 answers ENOSYS (glibc then falls back to clone for threads); any
    other architecture's syscalls (i386 through int 0x80, x32) are refused.
    """
    allow, deny, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    body = [("ld", 4), ("jeq", arch, None, "deny"), ("ld", 0)]
    if x32:
        body.append(("jge", 0x40000000, "deny", None))
    body += [("jeq", nr, "deny", None) for nr in forks]
    body += [("jeq", clone3, "enosys", None), ("jeq", clone, None, "allow"), ("ld", 16),
             ("jset", CLONE_THREAD, "allow", "deny")]
    labels = {"allow": len(body), "deny": len(body) + 1, "enosys": len(body) + 2}
    codes = {"ld": 0x20, "jeq": 0x15, "jge": 0x35, "jset": 0x45}
    out = b""
    for pc, (op, k, *jumps) in enumerate(body):
        jt, jf = [(labels[j] - pc - 1) if j else 0 for j in jumps] or (0, 0)
        out += struct.pack("=HBBI", codes[op], jt, jf, k)
    return out + b"".join(struct.pack("=HBBI", 0x06, 0, 0, ret) for ret in (allow, deny, enosys))


def _limit_self(memory_mb):
    """rlimits, death with the parent, and the no-new-processes filter.

    Returns whether the seccomp filter is in place (known architectures).
    """
    for name, value in (
        ("RLIMIT_AS", memory_mb * 1024 * 1024),
        ("RLIMIT_FSIZE", 1 << 24),
        ("RLIMIT_NOFILE", 64),
        ("RLIMIT_NPROC", 256),  # does not bind root (see docs/architecture.md); seccomp does
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
    libc = ctypes.CDLL(None, use_errno=True)
    ulong = ctypes.c_ulong
    libc.prctl(ulong(1), ulong(signal.SIGKILL), ulong(0), ulong(0), ulong(0))  # PR_SET_PDEATHSIG
    spec = SYSCALLS.get(platform.machine())
    if spec is None:
        return False
    program = ctypes.create_string_buffer(_seccomp_program(*spec))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program.raw) // 8, ctypes.addressof(program))
    if libc.prctl(ulong(38), ulong(1), ulong(0), ulong(0), ulong(0)) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    return libc.prctl(ulong(22), ulong(2), ctypes.byref(fprog), ulong(0), ulong(0)) == 0  # SECCOMP_MODE_FILTER


class JudgeError(Exception):
    """The engine refused or could not answer a judge() call."""


class Channel:
    """The protocol pipes, kept away from the task code's fds 0-2."""

    def __init__(self):
        self.reader = os.fdopen(os.dup(0), "rb")
        self.out = os.dup(1)
        self.call_id = None

    def send(self, payload):
        data = (json.dumps(payload, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self.out, view):]

    def receive(self):
        line = self.reader.readline()
        if not line:
            sys.exit(0)  # the engine went away
        return json.loads(line)

    def judge(self, question, answer, rubric):
        """Scores ``answer`` to ``question`` against ``rubric`` with the engine's judge plugin."""
        for name, value in (("question", question), ("answer", answer), ("rubric", rubric)):
            if not isinstance(value, str):
                raise TypeError(f"judge() {name} must be str, not {type(value).__name__}")
        self.send({"id": self.call_id, "judge": [question, answer, rubric]})
        reply = self.receive()
        if "error" in reply:
            raise JudgeError(reply["error"])
        return reply["value"]


def _check_score(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError(f"score() returned {type(value).__name__}, not a number or None")
    return float(value)


def _run_call(family, call):
    """One call against the family's class; returns its checked result."""
    if call["op"] == "tasks":
        tasks = family.get_tasks()
        if not isinstance(tasks, dict) or not tasks:
            raise TypeError("get_tasks() must return a non-empty dict")
        return json.loads(json.dumps({str(k): v for k, v in tasks.items()}, allow_nan=False))
    if call["op"] == "instructions":
        text = family.get_instructions(call["t"])
        if not isinstance(text, str) or not text.strip():
            raise TypeError("get_instructions() must return a non-empty str")
        text.encode("utf-8")
        return text
    if call["op"] == "score":
        return _check_score(family.score(call["t"], call["submission"]))
    raise ValueError(f"unknown op {call['op']!r}")


STAGES = {"tasks": "get_tasks()", "instructions": "get_instructions()", "score": "score()"}


def _serve(request, channel, families):
    """Runs one request's calls; returns the reply."""
    used = sum(os.times()[:2])
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = int(used + request["cpu_s"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    stage = "loading the source"
    try:
        family = families.get(request["digest"])
        if family is None:
            namespace = {"__name__": "task_family", "judge": channel.judge}
            exec(compile(request["source"], "<task family>", "exec"), namespace)
            family = namespace.get("TaskFamily")
            if family is None:
                raise NameError("the source defines no class TaskFamily")
            families[request["digest"]] = family
            if len(families) > CACHE_SIZE:
                families.popitem(last=False)
        families.move_to_end(request["digest"])
        results = []
        for call in request["calls"]:
            stage = STAGES.get(call["op"], f"{call['op']}()")
            results.append(_run_call(family, call))
    except BaseException as exc:  # noqa: BLE001 - anything task code does is reported
        message = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
        return {"ok": False, "error": f"{stage} raised {type(exc).__name__}: {message}".rstrip(": ")}
    return {"ok": True, "results": results}


def _wipe(home):
    """Leaves the private tmp as the next request should find it."""
    os.chdir(home)
    for name in os.listdir(home):
        path = os.path.join(home, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def main():
    channel = Channel()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    home = os.getcwd()
    seccomp = _limit_self(int(sys.argv[1]))
    channel.send({"ready": True, "seccomp": seccomp})
    families = OrderedDict()
    while True:
        request = channel.receive()
        channel.call_id = request["id"]
        reply = _serve(request, channel, families)
        try:
            channel.send({"id": request["id"], **reply})
        except (TypeError, ValueError) as exc:  # not JSON, NaN, or not UTF-8
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            channel.send({"id": request["id"], "ok": False, "error": f"results are not valid JSON text: {reason}"})
        _wipe(home)


if __name__ == "__main__":
    main()
