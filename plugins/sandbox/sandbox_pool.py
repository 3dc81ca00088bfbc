"""A pool of long-lived sandboxed workers that run task-family code.

A worker (``sandbox_worker.py``, started as :mod:`sandbox_jail` says) is fed
one JSON line per batch of calls and answers one JSON line, so a warm
``score()`` costs a pipe round trip, not a process start. Each batch has a
wall-clock deadline. Inside the worker each family runs in a process of its
own (see ``sandbox_worker.py``), so a family whose code fails, dies or
abuses its pipe costs only its own process and the worker stays warm. What
the worker cannot answer for (a timeout, the worker itself dying, garbage,
invalid UTF-8 or an oversized reply on the worker's pipe) costs that worker:
it is killed with its whole process group (under bubblewrap, its pid
namespace goes with it) and a fresh one is started for the next batch. The
task gets a one-line :class:`TaskCodeError` either way.

``judge(question, answer, rubric)`` calls from task code arrive as request
lines on the same pipe while a batch runs; the engine answers them with the
``judge`` callable it was given, at most ``judge_budget`` times per batch.
Time spent judging does not count against the batch's deadline.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

from acdc_engine.api import AcdcError, TaskCodeError
from .sandbox_jail import ENV, Launch, worker_uid
from .sandbox_worker import empty_folder

REPLY_LIMIT = 16 * 1024 * 1024
START_TIMEOUT_S = 60.0
NO_JUDGE = "judge() is unavailable: no plugin answers acdc_judge"
MAX_DEPTH = 64  # deepest nesting of lists and dicts in a batch's results (the engine re-serialises them)
JUDGE_CHARS = 16_000  # most characters of one judge() call's arguments: they become a judge model's prompt
log = logging.getLogger(__name__)

Judge = Callable[[str, str, str], "float | None"]


class _FamilyFailed(TaskCodeError):
    """The worker answered that the family's code failed: the worker itself is sound and stays warm."""


@functools.cache
def _warn_no_seccomp() -> None:
    log.warning("the sandbox worker could not install its seccomp filter (unknown architecture?): "
                "task code can start processes, bounded only by the timeout and RLIMIT_NPROC")


def _one_line(text: str, limit: int = 300) -> str:
    """The first line of ``text``, cut to ``limit``, with every unprintable character (terminal escapes
    written by task code) shown as ``?``."""
    line = (text.strip().splitlines() or [""])[0][:limit]
    return "".join(c if c.isprintable() else "?" for c in line)


class Worker:
    """One sandboxed worker process and its protocol pipes."""

    def __init__(self, launch: Launch) -> None:
        self.isolation = launch.isolation
        uid = worker_uid()
        self.home = tempfile.mkdtemp(prefix="acdc-sandbox-") if launch.isolation == "rlimits" else None
        if self.home and uid is not None:
            os.chown(self.home, uid, uid)  # the worker's private cwd, its own after it gives up root
        env = {**ENV, "HOME": self.home, "TMPDIR": self.home} if self.home else ENV
        self.proc = subprocess.Popen(launch.argv_for(uid), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=self.home, env=env, start_new_session=True,
                                     bufsize=0)
        self.out_fd, self.in_fd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        os.set_blocking(self.in_fd, False)
        self.poll_in, self.poll_out = select.poll(), select.poll()
        self.poll_in.register(self.out_fd, select.POLLIN)
        self.poll_out.register(self.in_fd, select.POLLOUT)
        self.buffer = bytearray()
        try:
            hello = self._receive(time.monotonic() + START_TIMEOUT_S, START_TIMEOUT_S)
        except TaskCodeError as exc:
            self.kill()
            raise AcdcError(f"the sandbox worker did not start ({launch.isolation}): {exc}") from None
        if hello.get("ready") is not True:
            self.kill()
            raise AcdcError(f"the sandbox worker refused to start ({launch.isolation}): "
                            f"{_one_line(str(hello.get('error')))}")
        if not hello.get("seccomp"):
            _warn_no_seccomp()

    def idle_and_alive(self) -> bool:
        """True if nothing is waiting on the pipe: no stray output, no exit."""
        return not self.buffer and not self.poll_in.poll(0)

    def run(self, message: dict, *, timeout_s: float, judge: Judge | None, judge_budget: int) -> list:
        """Sends one batch, answers its judge requests, returns its results."""
        deadline = time.monotonic() + timeout_s
        self._send(message, deadline, timeout_s)
        judged, refusal = 0, None
        while True:
            reply = self._receive(deadline, timeout_s)
            if "judge" in reply:
                started = time.monotonic()
                answer, refusal = self._judge(reply["judge"], judge, judged, judge_budget, refusal)
                judged += 1
                deadline += time.monotonic() - started
                self._send(answer, deadline, timeout_s)
                continue
            if reply.get("id") != message["id"]:
                raise TaskCodeError("no valid reply (out of step with the worker)")
            if refusal:
                raise _FamilyFailed(refusal)
            if reply.get("ok") is not True:
                raise _FamilyFailed(_one_line(str(reply.get("error") or "failed")))
            return _checked(message["calls"], reply.get("results"))

    @staticmethod
    def _judge(request, judge: Judge | None, judged: int, budget: int, refusal: str | None):
        """The answer to one judge request, and the batch's refusal reason if any."""
        if refusal:
            return {"error": refusal}, refusal
        if judged >= budget:
            refusal = f"judge() called more than {budget} times in one batch (sandbox.judge_budget)"
        elif not (isinstance(request, list) and len(request) == 3 and all(isinstance(x, str) for x in request)):
            refusal = "malformed judge() request on the protocol pipe"
        elif sum(map(len, request)) > JUDGE_CHARS:
            refusal = f"judge() arguments of {sum(map(len, request))} characters, over {JUDGE_CHARS} in all"
        else:
            value = judge(*request) if judge is not None else None
            if value is None:
                refusal = NO_JUDGE
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise AcdcError(f"acdc_judge returned {value!r}, not a finite number")
            else:
                return {"value": float(value)}, None
        return {"error": refusal}, refusal

    def _send(self, message: dict, deadline: float, timeout_s: float) -> None:
        view = memoryview((json.dumps(message) + "\n").encode())
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TaskCodeError(f"timed out after {timeout_s:g} s")
            if not self.poll_out.poll(remaining * 1000):
                continue
            try:
                view = view[os.write(self.in_fd, view):]
            except BrokenPipeError:
                raise TaskCodeError(self._death()) from None

    def _receive(self, deadline: float, timeout_s: float) -> dict:
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > REPLY_LIMIT:
                raise TaskCodeError(f"reply larger than {REPLY_LIMIT} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TaskCodeError(f"timed out after {timeout_s:g} s")
            if not self.poll_in.poll(remaining * 1000):
                continue
            chunk = os.read(self.out_fd, 1 << 20)
            if not chunk:
                raise TaskCodeError(self._death())
            self.buffer += chunk
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        try:
            reply = json.loads(line.decode("utf-8"))
        except ValueError:  # includes UnicodeDecodeError
            raise TaskCodeError("no valid reply (garbage on the protocol pipe)") from None
        except RecursionError:  # nesting the engine's own stack cannot parse
            raise TaskCodeError(f"no valid reply (nested deeper than {MAX_DEPTH} levels)") from None
        if not isinstance(reply, dict):
            raise TaskCodeError("no valid reply (garbage on the protocol pipe)")
        return reply

    def _death(self) -> str:
        """Why the worker closed its pipe: the signal or exit status."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the worker closed its protocol pipe"
        number = -code if code < 0 else code - 128 if self.isolation == "bubblewrap" and code > 128 else 0
        try:
            name = signal.Signals(number).name if number else None
        except ValueError:
            name = None
        if name:
            return f"killed by {name}" + (" (CPU time limit)" if name == "SIGXCPU" else "")
        return f"no valid reply (exit status {code})"

    def kill(self) -> None:
        """Kills the worker's process group (and with bubblewrap its namespaces)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()
        if self.home:  # however deep or unreadable task code left it (shutil.rmtree stops at recursion limits)
            empty_folder(self.home)
            try:
                os.rmdir(self.home)
            except OSError:
                pass


def _checked(calls: list[dict], results) -> list:
    """The engine's own check of a batch's results (the pipe can be forged)."""
    if not isinstance(results, list) or len(results) != len(calls):
        raise TaskCodeError("no valid reply (wrong number of results)")
    for call, result in zip(calls, results):
        kind = {"tasks": dict, "instructions": str, "score": (float, type(None))}[call["op"]]
        if not isinstance(result, kind):
            raise TaskCodeError(f"no valid reply ({call['op']} result is {type(result).__name__})")
        if call["op"] == "score" and result is not None and not 0.0 <= result <= 1.0:
            raise TaskCodeError(f"score() returned {result!r}, outside [0, 1]")
    if _deeper_than(results, MAX_DEPTH):
        raise TaskCodeError(f"no valid reply (nested deeper than {MAX_DEPTH} levels)")
    try:
        json.dumps(results, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise TaskCodeError("no valid reply (text that is not valid UTF-8)") from None
    return results


def _deeper_than(value, limit: int) -> bool:
    """Whether lists and dicts nest deeper than ``limit`` in ``value`` (without recursion: the engine stores and
    re-sends instance data from deeper in its own stack than the worker parsed it)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


class WorkerPool:
    """Warm sandboxed workers of one kind (launch command); safe to share between threads.

    Workers start lazily, at most ``size`` at once; a worker whose batch
    failed is killed and replaced. :meth:`close` kills them all.
    """

    def __init__(self, *, launch: Launch, size: int = 2) -> None:
        self.launch, self.size = launch, size
        self.idle: list[Worker] = []
        self.busy = 0
        self.closed = False
        self.ids = itertools.count(1)
        self.cond = threading.Condition()

    def run(self, source: str, calls: list[dict], *, timeout_s: float, judge: Judge | None = None,
            judge_budget: int = 8) -> list:
        """Runs ``calls`` against a family's source; raises :class:`TaskCodeError` on failure."""
        worker = self._acquire()
        # The CPU limit is a backstop a second past the wall-clock limit: a busy loop, whose CPU time keeps
        # pace with the clock, is then always reported as a timeout, not by whichever limit fired first.
        message = {"id": next(self.ids), "source": source, "calls": calls, "cpu_s": math.ceil(timeout_s) + 1}
        healthy = False
        try:
            results = worker.run(message, timeout_s=timeout_s, judge=judge, judge_budget=judge_budget)
            healthy = True
            return results
        except _FamilyFailed:
            healthy = True
            raise
        finally:
            self._release(worker, healthy)

    def _acquire(self) -> Worker:
        with self.cond:
            while True:
                if self.closed:
                    raise AcdcError("the sandbox worker pool is closed")
                if self.idle:
                    worker = self.idle.pop()
                    if worker.idle_and_alive():
                        self.busy += 1
                        return worker
                    worker.kill()
                elif self.busy < self.size:
                    self.busy += 1
                    break
                else:
                    self.cond.wait()
        try:
            return Worker(self.launch)
        except BaseException:
            with self.cond:
                self.busy -= 1
                self.cond.notify()
            raise

    def _release(self, worker: Worker, healthy: bool) -> None:
        with self.cond:
            self.busy -= 1
            keep = healthy and not self.closed
            if keep:
                self.idle.append(worker)
            self.cond.notify()
        if not keep:
            worker.kill()

    def close(self) -> None:
        """Kills the idle workers now and busy ones when their batch ends."""
        with self.cond:
            self.closed = True
            idle, self.idle = self.idle, []
            self.cond.notify_all()
        for worker in idle:
            worker.kill()
