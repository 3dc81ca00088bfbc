"""Hostile task code is contained by the sandbox, costs only its worker, and the pool goes on.

Every hostile ``score()`` below must end in a one-line ``TaskCodeError`` and
leave the pool serving the next batch. Isolation checks (files, network,
signals) need bubblewrap and are skipped, with the reason, where it cannot run.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from acdc_engine.hookspecs import hookimpl
from acdc_engine.plugins.sandbox import sandbox_plugin as sandbox
from acdc_engine.plugins.sandbox.sandbox_jail import bubblewrap_problem
from acdc_engine.tasks import TaskCodeError

TIMEOUT_S, MEMORY_MB = 1.5, 256
BWRAP = bubblewrap_problem()
needs_bwrap = pytest.mark.skipif(BWRAP is not None, reason=f"bubblewrap cannot run here: {BWRAP}")
ISOLATIONS = ["rlimits", pytest.param("bubblewrap", marks=needs_bwrap)]

GOOD = '''
class TaskFamily:
    @staticmethod
    def get_tasks():
        return {"1": {"a": 2, "b": 3}}
    @staticmethod
    def get_instructions(t):
        return "What is 2 + 3?"
    @staticmethod
    def score(t, submission):
        return float(submission == "5")
'''


def hostile(body: str) -> str:
    """A family whose ``score()`` runs ``body`` (it may read ``t``)."""
    return ("import os, signal, socket, sys\n"
            "class TaskFamily:\n"
            "    @staticmethod\n"
            "    def score(t, submission):\n" + textwrap.indent(textwrap.dedent(body), " " * 8))


def score(source: str, isolation: str, t=None, timeout_s: float = TIMEOUT_S):
    calls = [{"op": "score", "t": t or {}, "submission": "5"}]
    return sandbox.run_task_code(source, calls, timeout_s=timeout_s, memory_mb=MEMORY_MB, isolation=isolation)


def assert_contained(source: str, isolation: str, reason: str, t=None, timeout_s: float = TIMEOUT_S) -> str:
    """The hostile batch fails with a one-line reason containing ``reason``; the pool still works."""
    started = time.monotonic()
    with pytest.raises(TaskCodeError) as err:
        score(source, isolation, t, timeout_s)
    message = str(err.value)
    assert reason in message and "\n" not in message
    assert time.monotonic() - started < timeout_s + 5
    assert score(GOOD, isolation) == [1.0]
    return message


def sandbox_processes() -> list[int]:
    """Processes of this machine that run a sandbox worker started by this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(MEMORY_MB).encode() in cmdline and any(part.endswith(b"worker.py") for part in cmdline):
            found.append(int(entry.name))
    return found


def no_sandbox_processes_soon() -> bool:
    """Killing bwrap takes its namespace down asynchronously (parent-death signals): wait a little."""
    deadline = time.monotonic() + 5
    while sandbox_processes():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize(("body", "reason"), [
    ("while True: pass", f"timed out after {TIMEOUT_S:g} s"),
    ("while True: os.fork()", "PermissionError"),  # seccomp refuses new processes, root or not
    ("import subprocess; subprocess.run(['true'])", "PermissionError"),
    ("x = bytearray(10 * 2**30)", "MemoryError"),
    ("sys.setrecursionlimit(10**8)\ndef down(n): return down.__call__(n + 1)\ndown(0)", "killed by SIGSEGV"),
    ("def down(n): return down(n + 1)\ndown(0)", "RecursionError"),
    ("os._exit(0)", "no valid reply (exit status 0)"),
    ("os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL"),
])
def test_runaway_code_is_stopped(body, reason, isolation):
    assert_contained(hostile(body), isolation, reason)


FLOOD_PIPES = '''
chunk = {payload} * (1 << 20)
for _ in range(1024):
    for fd in range(3, 64):
        try:
            os.write(fd, chunk)
        except OSError:
            pass
'''


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize(("body", "reason"), [
    (FLOOD_PIPES.format(payload="b'x'"), "reply larger than"),  # 1 GB at the protocol pipe
    ("for fd in range(3, 64):\n    try: os.write(fd, b'\\xff\\xfe not utf-8\\n')\n    except OSError: pass\n"
     "return 1.0", "garbage on the protocol pipe"),
    ("for fd in range(3, 64):\n    try: os.write(fd, b'{\"id\": -1, \"ok\": true, \"results\": [1.0]}\\n')\n"
     "    except OSError: pass\nreturn 1.0", "out of step"),
])
def test_protocol_abuse_costs_only_the_worker(body, reason, isolation):
    assert_contained(hostile(body), isolation, reason)


def test_printing_a_gigabyte_goes_nowhere():
    """Task code's own stdout is not the protocol pipe: 1 GB of prints changes nothing."""
    body = "for _ in range(1024):\n    sys.stdout.write('x' * (1 << 20))\nprint('\\xff', file=sys.stderr)\nreturn 0.25"
    assert score(hostile(body), "auto", timeout_s=20) == [0.25]


def test_text_that_is_not_utf8_is_refused():
    source = GOOD.replace('return "What is 2 + 3?"', 'return "What is \\udcff?"')
    with pytest.raises(TaskCodeError, match="get_instructions\\(\\) raised UnicodeEncodeError"):
        sandbox.run_task_code(source, [{"op": "instructions", "t": {}}], timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)


@needs_bwrap
def test_writes_outside_the_private_tmp_fail(tmp_path):
    targets = ["/evil", "/usr/evil", str(tmp_path / "evil"), str(Path.home() / "evil")]
    body = "for path in t['paths']:\n    try: open(path, 'w').write('x')\n    except OSError: continue\n" \
           "    raise RuntimeError('wrote ' + path)\nopen('/tmp/mine', 'w').write('x')\nraise OSError('contained')"
    assert_contained(hostile(body), "bubblewrap", "OSError: contained", t={"paths": targets})
    assert not any(Path(p).exists() for p in targets)


@needs_bwrap
def test_the_run_database_and_home_are_invisible(tmp_path, smollm2_dir):
    db_file = tmp_path / "run.sqlite"
    with sqlite3.connect(db_file) as db:
        db.execute("CREATE TABLE secret (v TEXT)")
        db.execute("INSERT INTO secret VALUES ('s3cret')")
    home_file = smollm2_dir / "config.json"  # in the user's cache under $HOME
    assert home_file.is_relative_to(Path.home()) and home_file.is_file()
    for path in (db_file, home_file):
        assert_contained(hostile("open(t['path'], 'rb').read()"), "bubblewrap", "FileNotFoundError",
                         t={"path": str(path)})


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_no_connection_reaches_a_listener_on_localhost(isolation):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        body = "s = socket.create_connection(('127.0.0.1', t['port']), timeout=0.5)\ns.sendall(b'hello')"
        assert_contained(hostile(body), isolation, "PermissionError", t={"port": listener.getsockname()[1]})
        with pytest.raises(BlockingIOError):
            listener.accept()


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("target", ["os.getppid()", "-1", "0", "t['engine']"])
def test_signals_reach_nothing_but_the_family_itself(isolation, target):
    body = f"os.kill({target}, signal.SIGKILL)"
    assert_contained(hostile(body), isolation, "PermissionError", t={"engine": os.getpid()})


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_timed_out_worker_is_killed_with_everything_it_started(isolation):
    sandbox.close_pools()  # only this pool's worker is left to watch
    assert no_sandbox_processes_soon()
    score(GOOD, isolation)
    before = set(sandbox_processes())
    assert before
    with pytest.raises(TaskCodeError, match="timed out"):
        score(hostile("import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n"
                      "while True: pass"), isolation)
    deadline = time.monotonic() + 5
    while before & set(sandbox_processes()):  # the hung worker and its namespace are gone
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert score(GOOD, isolation) == [1.0]
    sandbox.close_pools()
    assert no_sandbox_processes_soon()


def test_workers_go_away_when_the_engine_process_exits(tmp_path):
    script = tmp_path / "engine.py"
    script.write_text(textwrap.dedent(f'''
        import sys
        from acdc_engine.plugins.sandbox import sandbox_plugin as sandbox
        source = {GOOD!r}
        sandbox.run_task_code(source, [{{"op": "score", "t": {{}}, "submission": "5"}}], timeout_s=5,
                              memory_mb={MEMORY_MB + 1})
        print("scored", flush=True)
        if sys.argv[1] == "crash":
            import os, signal
            os.kill(os.getpid(), signal.SIGKILL)
    '''))
    for how in ("exit", "crash"):
        out = subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, timeout=60)
        assert "scored" in out.stdout
        deadline = time.monotonic() + 5
        while any(f"worker.py\0{MEMORY_MB + 1}".encode() in (p / "cmdline").read_bytes()
                  for p in Path("/proc").iterdir() if p.name.isdigit() and (p / "cmdline").exists()):
            assert time.monotonic() < deadline, f"a worker outlived its engine ({how})"
            time.sleep(0.1)


BROKEN = {
    "fork-bomb": "while True: os.fork()",
    "exits": "os._exit(0)",
    "floods-pipe": FLOOD_PIPES.format(payload="b'x'"),
    "opens-socket": "socket.create_connection(('127.0.0.1', 9), timeout=0.5)",
    "eats-memory": "x = bytearray(10 * 2**30)",
    "huge-score": "return 1e308",
    "negative-score": "return -5.0",
}


def hostile_family(body: str) -> str:
    """Sound at acceptance (empty submission), hostile on real answers."""
    return ("import os, signal, socket, sys\n"
            "class TaskFamily:\n"
            "    @staticmethod\n    def get_tasks():\n        return {'1': {'q': 1}}\n"
            "    @staticmethod\n    def get_instructions(t):\n        return 'Say 1. Answer: <n>'\n"
            "    @staticmethod\n    def score(t, submission):\n"
            "        if submission == '':\n            return 0.0\n"
            + textwrap.indent(body, " " * 8) + "\n")


class HostileTasks:
    @hookimpl
    def acdc_generate_tasks(self, request):
        if request.mode != "initial":
            return None
        from acdc_engine.tasks import TaskSpec
        return [TaskSpec(f"hostile-{name}", name, "broken", 1, hostile_family(body), "hostile")
                for name, body in BROKEN.items()]


def test_the_loop_marks_hostile_tasks_broken_and_goes_on(tiny_config, tmp_path):
    from test_loop_tiny import run_once

    config = tiny_config(**{"run.generations": 1, "tasks.initial_families": 14, "tasks.active_cap": 14,
                            "sandbox.timeout_s": 3.0,
                            "sandbox.memory_mb": 256})
    run_once(config, tmp_path / "run", [HostileTasks()])
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    rows = {r[0]: (r[1], r[2]) for r in db.execute("SELECT name, status, reason FROM tasks WHERE generator='hostile'")}
    expected = {"fork-bomb": "PermissionError", "exits": "exit status 0", "floods-pipe": "reply larger than",
                "opens-socket": "Error", "eats-memory": "MemoryError", "huge-score": "outside [0, 1]",
                "negative-score": "outside [0, 1]"}
    for name, reason in expected.items():
        status, why = rows[f"hostile-{name}"]
        assert status == "broken" and why.startswith("score() failed: ") and reason in why, (name, why)
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 1  # the run went on
    sound = db.execute("SELECT COUNT(*) FROM evaluations e JOIN tasks t ON t.id = e.task_id "
                       "WHERE t.generator != 'hostile'").fetchone()[0]
    assert sound > 0 and db.execute("SELECT COUNT(*) FROM task_force").fetchone()[0] == 1
    assert no_sandbox_processes_soon()  # Coevolution.close() closed the pools
