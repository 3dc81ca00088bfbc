"""Task code tries to reach the host, the engine and other families, as an attacker would.

The engine runs as root on CI and on many users' machines, so every case
here is tried as root where the test runs as root: the worker must not be uid
0 for the host (no kernel settings, no signals by uid), the seccomp filter
must refuse every way to aim a signal elsewhere (``F_SETOWN``, ``FIOSETOWN``),
to leave state behind for the next family (SysV IPC, POSIX queues, keyrings,
sockets, timers) or to tamper with the zygote, and nothing of a family may
run after its batch. Each attack is harmless where it succeeds (it opens,
never writes, a kernel setting) so that a failing test leaves the host as it
was.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest

from acdc_engine.hookspecs import hookimpl
from acdc_engine.plugins.sandbox import sandbox_plugin as sandbox
from test_sandbox_adversarial import GOOD, ISOLATIONS, MEMORY_MB, TIMEOUT_S, assert_contained

PRELUDE = "import ctypes, fcntl, os, signal, socket, sys, threading, time\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def family(body: str) -> str:
    """A family whose ``score(t, submission)`` runs ``body`` (names from PRELUDE in scope)."""
    return (PRELUDE + "class TaskFamily:\n    @staticmethod\n    def score(t, submission):\n"
            + textwrap.indent(textwrap.dedent(body), " " * 8))


def run(source: str, isolation: str, t=None, timeout_s: float = TIMEOUT_S):
    (value,) = sandbox.run_task_code(source, [{"op": "score", "t": t or {}, "submission": "5"}],
                                     timeout_s=timeout_s, memory_mb=MEMORY_MB, isolation=isolation)
    return value


@pytest.fixture
def victim():
    """A process of the engine's user outside the sandbox (a stand-in for the engine or a sibling)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


KERNEL_SETTINGS = """
for path in ('/proc/sys/kernel/core_pattern', '/proc/sys/kernel/core_uses_pid', '/proc/sys/vm/drop_caches',
             '/proc/sysrq-trigger', '/sys/kernel/mm/transparent_hugepage/enabled'):
    try:
        fd = os.open(path, os.O_WRONLY)  # opened only: a success is reported, never used
    except OSError:
        continue
    os.close(fd)
    raise RuntimeError('opened ' + path + ' for writing')
raise OSError('contained')
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_task_code_cannot_open_the_hosts_kernel_settings_for_writing(isolation):
    assert_contained(family(KERNEL_SETTINGS), isolation, "OSError: contained")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_task_code_is_not_root_for_the_host(isolation):
    """Not uid 0 and no capabilities: file modes and signal permissions then hold against it."""
    body = ("status = open('/proc/self/status').read()\n"
            "caps = [l for l in status.splitlines() if l.startswith(('CapEff', 'CapPrm'))]\n"
            "if os.geteuid() == 0 and open('/proc/self/uid_map').read().split()[1] == '0':\n"
            "    raise RuntimeError('uid 0 of the host')\n"
            "if any(int(l.split()[1], 16) for l in caps):\n"
            "    raise RuntimeError('capabilities ' + ' '.join(caps))\n"
            "return 1.0")
    assert run(family(body), isolation) == 1.0


SIGNAL_ON_IO = """
target = t['pid'] if t['pid'] else os.getppid()
r, w = os.pipe()
fcntl.fcntl(r, {command})
fcntl.fcntl(r, 10, int(signal.SIGKILL))  # F_SETSIG
fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC)
os.write(w, b'x')
return 1.0
"""

FIOSETOWN = """
import array
target = t['pid'] if t['pid'] else os.getppid()
r, w = os.pipe()
fcntl.ioctl(r, 0x8901, array.array('i', [target]))  # FIOSETOWN
fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC)
os.write(w, b'x')
return 1.0
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("attack", ["F_SETOWN", "F_SETOWN_EX", "FIOSETOWN"])
@pytest.mark.parametrize("target", ["outside", "zygote"])
def test_signals_on_io_cannot_be_aimed_at_anyone(isolation, attack, target, victim):
    if attack == "FIOSETOWN":
        source = family(FIOSETOWN)
    elif attack == "F_SETOWN":
        source = family(SIGNAL_ON_IO.format(command="fcntl.F_SETOWN, target"))
    else:  # struct f_owner_ex {int type; pid_t pid}: F_OWNER_PID = 1
        source = family(SIGNAL_ON_IO.format(command="15, bytes((ctypes.c_int * 2)(1, target))"))
    assert_contained(source, isolation, "PermissionError", t={"pid": victim if target == "outside" else 0})
    assert os.waitpid(victim, os.WNOHANG) == (0, 0), "the process outside was signalled"


LINGER = """
def plant():
    n = 0
    while True:
        try:
            with open(f"/tmp/planted-{os.getpid()}-{n}", "w") as f:
                f.write("x")
            n += 1
        except OSError:
            pass
        time.sleep(0.002)
try:
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    signal.signal(signal.SIGCONT, lambda *a: None)
except (OSError, ValueError):
    pass
class SigEvent(ctypes.Structure):
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                ("pad", ctypes.c_byte * 48)]
class Spec(ctypes.Structure):
    _fields_ = [("interval_s", ctypes.c_long), ("interval_ns", ctypes.c_long),
                ("value_s", ctypes.c_long), ("value_ns", ctypes.c_long)]
timer = ctypes.c_void_p()
if libc.timer_create(1, ctypes.byref(SigEvent(None, int(signal.SIGCONT), 0)), ctypes.byref(timer)) == 0:
    libc.timer_settime(timer, 0, ctypes.byref(Spec(0, 2_000_000, 0, 2_000_000)), None)
threading.Thread(target=plant, daemon=True).start()
time.sleep(0.05)
return 0.0
"""

SEES_NOTHING = """
time.sleep(0.05)
found = [n for n in os.listdir('/tmp') if n.startswith('planted')]
if found:
    raise RuntimeError(f'{len(found)} files planted by another family')
return 1.0
"""


def test_nothing_of_a_family_runs_after_its_batch(tmp_path):
    """A timer that sends SIGCONT and a thread that writes files: gone with the batch (as root too)."""
    lingerer = family(LINGER)
    assert run(lingerer, "bubblewrap") == 0.0
    for _ in range(5):
        assert run(family(SEES_NOTHING), "bubblewrap") == 1.0


def test_nothing_of_a_family_runs_after_its_batch_without_the_jail():
    """In the fallback the family writes in its private cwd: the same check there."""
    lingerer = family(LINGER.replace("/tmp/planted", "planted"))
    assert run(lingerer, "rlimits") == 0.0
    for _ in range(5):
        assert run(family(SEES_NOTHING.replace("'/tmp'", "'.'")), "rlimits") == 1.0


THREADS = """
threading.stack_size(32768)
started = 0
try:
    for _ in range(2000):
        threading.Thread(target=time.sleep, args=(1,), daemon=True).start()
        started += 1
except RuntimeError:
    pass
return started / 10000
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_family_starts_a_bounded_number_of_threads(isolation):
    from acdc_engine.plugins.sandbox.sandbox_worker import FAMILY_TASKS

    (started,) = sandbox.run_task_code(family(THREADS), [{"op": "score", "t": {}, "submission": "5"}],
                                       timeout_s=10, memory_mb=1024, isolation=isolation)
    assert started * 10000 < FAMILY_TASKS


CHANNELS = {
    "socket": "socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
    "unix socket": "socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind('\\0acdc-channel')",
    "socketpair": "socket.socketpair()",
    "SysV shared memory": "r = libc.shmget(0x4143, 4096, 0o1666)\n"
                          "if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
    "SysV message queue": "r = libc.msgget(0x4143, 0o1666)\n"
                          "if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
    "POSIX message queue": "r = libc.syscall(240, b'acdc', 0o102, 0o666, None)\n"  # mq_open
                           "if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
    "keyring": "r = libc.syscall(248, b'user', b'acdc', b'secret', 6, -4)\n"  # add_key to the user keyring
               "if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
    "io_uring": "r = libc.syscall(425, 8, ctypes.create_string_buffer(120))\n"
                "if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
    "timer": "r = libc.timer_create(1, None, ctypes.byref(ctypes.c_void_p()))\n"
             "if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
    "zygote's limits": "import resource\nresource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (3, 3))",
    "zygote's priority": "os.setpriority(os.PRIO_PROCESS, os.getppid(), 19)",
    "zygote's CPUs": "os.sched_setaffinity(os.getppid(), {0})",
    "dumpable again": "r = libc.prctl(4, 1, 0, 0, 0)\n"
                      "if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
}


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("channel", list(CHANNELS))
def test_no_channel_outlives_a_family_or_reaches_the_zygote(isolation, channel):
    """Everything that could carry state to the next family, or weaken the zygote, is refused."""
    assert_contained(family(CHANNELS[channel] + "\nreturn 1.0"), isolation, "PermissionError")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_own_limits_and_signals_still_work(isolation):
    """What honest code does with its own process stays allowed."""
    body = ("import resource\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))\n"
            "resource.prlimit(0, resource.RLIMIT_CORE, (0, 0))\n"
            "got = []\n"
            "signal.signal(signal.SIGUSR1, lambda *a: got.append(1))\n"
            "os.kill(os.getpid(), signal.SIGUSR1)\n"
            "threading.Thread(target=got.append, args=(2,)).start()\n"
            "time.sleep(0.05)\n"
            "return len(got) / 2")
    assert run(family(body), isolation) == 1.0


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("value", ["1e308", "-5.0", "1.0000001", "float('inf')", "float('nan')"])
def test_scores_outside_0_1_fail_the_batch_with_one_line(isolation, value):
    message = assert_contained(family(f"return {value}"), isolation, "score()")
    assert "[0, 1]" in message or "not a number" in message or "not valid JSON" in message


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_family_has_a_hard_cpu_limit_it_cannot_raise(isolation):
    """Ignoring SIGXCPU buys nothing: the hard limit (SIGKILL) is finite and cannot be raised."""
    body = ("import resource\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_CPU)\n"
            "if hard == resource.RLIM_INFINITY or hard > soft + 2:\n"
            "    raise RuntimeError(f'CPU limit {soft} / {hard}')\n"
            "try:\n"
            "    resource.setrlimit(resource.RLIMIT_CPU, (hard + 100, hard + 100))\n"
            "except (ValueError, OSError):\n"
            "    return 1.0\n"
            "raise RuntimeError('raised its own CPU limit')")
    assert run(family(body), isolation) == 1.0


class FirstTaskScoresOutOfRange:
    """A scoring plugin outside the sandbox that answers 1e308 for one task: the engine checks it too."""

    def __init__(self):
        self.task = None

    @hookimpl(tryfirst=True)
    def acdc_score_submissions(self, task, instances, submissions, limits):
        self.task = self.task or task.name
        if task.name != self.task:
            return None
        return [1e308 if s else 0.0 for s in submissions]  # sound at intake (empty answers), not after


def test_the_loop_breaks_a_task_whose_scores_leave_0_1_and_goes_on(tiny_config, tmp_path):
    from conftest import run_in_process

    scorer = FirstTaskScoresOutOfRange()
    run_in_process(tiny_config(**{"run.generations": 1}), tmp_path / "run", [scorer])
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    status, reason = db.execute("SELECT status, reason FROM tasks WHERE name = ?", (scorer.task,)).fetchone()
    assert status == "broken" and reason == "score() failed: score() returned 1e+308, outside [0, 1]"
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 1
    assert db.execute("SELECT MAX(score) FROM evaluations").fetchone()[0] <= 1.0


@pytest.mark.skipif(os.geteuid() != 0, reason="only a worker started as root has root to give up")
def test_a_root_worker_that_cannot_give_up_root_refuses_to_start(monkeypatch):
    from acdc_engine.errors import AcdcError
    from acdc_engine.plugins.sandbox import sandbox_pool
    from acdc_engine.plugins.sandbox.sandbox_jail import launch_for

    monkeypatch.setattr(sandbox_pool, "worker_uid", lambda: None)
    with pytest.raises(AcdcError, match="refused to start \\(rlimits\\): the worker runs as root and was given no uid"):
        sandbox_pool.Worker(launch_for("rlimits", MEMORY_MB))


OVERSIZED = {
    "long-prompt": ("{'1': {}}", "'word ' * 400000"),  # 2 MB of prompt for every model
    "many-instances": ("{str(i): {} for i in range(5000)}", "'Say 1.'"),  # 5000 prompts for every model
    "heavy-data": ("{'1': {'pad': 'x' * 2_000_000}}", "'Say 1.'"),  # 2 MB stored, sent with every score()
}


class OversizedTasks:
    @hookimpl
    def acdc_generate_tasks(self, request):
        if request.mode != "initial":
            return None
        from acdc_engine.tasks import TaskSpec
        return [TaskSpec(name, name, "broken", 1,
                         "class TaskFamily:\n"
                         f"    @staticmethod\n    def get_tasks():\n        return {tasks}\n"
                         f"    @staticmethod\n    def get_instructions(t):\n        return {text}\n"
                         "    @staticmethod\n    def score(t, submission):\n        return 0.0\n", "hostile")
                for name, (tasks, text) in OVERSIZED.items()]


def test_families_that_would_flood_every_model_with_prompts_are_rejected(tiny_config, tmp_path):
    """Task code cannot make the engine answer megabytes of prompt or thousands of instances."""
    from conftest import run_in_process

    run_in_process(tiny_config(**{"run.generations": 1}), tmp_path / "run", [OversizedTasks()])
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    rows = dict(db.execute("SELECT name, reason FROM tasks WHERE generator = 'hostile' AND status = 'rejected'"))
    assert rows["long-prompt"] == ("too large: get_instructions() gave 2000000 characters for instance '1', "
                                   "over sandbox.max_instruction_chars = 8000")
    assert rows["many-instances"] == "too large: get_tasks() gave 5000 instances, over sandbox.max_instances = 32"
    assert rows["heavy-data"].startswith("too large: get_tasks() gave 2000011 bytes of instance data, over 1000000")
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 1


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_task_code_cannot_write_terminal_escapes_into_the_engines_messages(isolation):
    """Its exception text reaches the live view, `status` and the log: only printable characters pass."""
    body = "raise RuntimeError('\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\u202e\\x00 evil')"
    message = assert_contained(family(body), isolation, "RuntimeError")
    assert message.isprintable() and message.endswith("?]52;c;ZXZpbA==??[2J?? evil")


def test_judge_calls_cannot_flood_the_judge_model():
    from acdc_engine.plugins.sandbox.sandbox_pool import JUDGE_CHARS
    from acdc_engine.tasks import TaskCodeError

    asked = []
    body = "return judge('q' * t['n'], 'a', 'r')"
    call = [{"op": "score", "t": {"n": JUDGE_CHARS}, "submission": "5"}]
    with pytest.raises(TaskCodeError, match=f"judge\\(\\) arguments of {JUDGE_CHARS + 2} characters, over"):
        sandbox.run_task_code(family(body), call, timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB,
                              judge=lambda *a: asked.append(a) or 1.0)
    call[0]["t"]["n"] = 100
    assert sandbox.run_task_code(family(body), call, timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB,
                                 judge=lambda *a: asked.append(a) or 1.0) == [1.0]
    assert [len(q) for q, _, _ in asked] == [100]  # the oversized call never reached the judge


OUTLIVE = """
libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG 0: no death with the zygote
try:
    os.setsid()  # out of the worker's process group, which the engine kills at the deadline
except OSError:
    pass
libc.prctl(15, t['name'].encode(), 0, 0, 0)  # PR_SET_NAME, to be found from outside
time.sleep(30)
"""


def _living(name: str) -> list[int]:
    """Processes named ``name`` that are alive (not zombies waiting for init)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
        except OSError:
            continue
        if status.get("Name") == name and not status.get("State", "").startswith(("Z", "X")):
            found.append(int(entry))
    return found


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_family_cannot_outlive_its_worker(isolation):
    """Clearing its parent-death signal and leaving the worker's process group does not keep a family alive
    once its worker is killed at the deadline (without the jail there is no pid namespace to take it down)."""
    import time

    name = f"outlive-{isolation[:4]}"
    assert_contained(family(OUTLIVE), isolation, "timed out", t={"name": name})
    deadline = time.monotonic() + 5
    while (alive := _living(name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in alive:  # only what this test started
        os.kill(pid, 9)
    assert not alive, "a family's process outlived its worker"


LOCKED_AWAY = """
home = os.getcwd()
if t['plant']:
    os.makedirs(home + '/vault/inner')
    with open(home + '/vault/inner/secret', 'w') as f:
        f.write('left by the last family')
    os.chmod(home + '/vault/inner', 0o500)  # its entries cannot be removed
    os.chmod(home + '/vault', 0)  # cannot even be listed
    os.chdir(home)
    for _ in range(200):  # deeper than one descriptor a level or the recursion limit allow
        os.mkdir('d')
        os.chdir('d')
    return 0.0
left = os.listdir(home)
if left:
    raise RuntimeError(f'found {left} left by another family')
return 1.0
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_files_a_family_locks_away_or_nests_deep_are_wiped_too(isolation):
    assert run(family(LOCKED_AWAY), isolation, t={"plant": True}) == 0.0
    assert run(family(LOCKED_AWAY), isolation, t={"plant": False}) == 1.0


MEMORY_OUTSIDE = """
fd = libc.syscall(319, b'x', 0)  # memfd_create: 16 MiB (RLIMIT_FSIZE) each, outside RLIMIT_AS
if fd < 0:
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
return 1.0
"""

AIO = """
ctx = ctypes.c_ulong(0)
if libc.syscall(206 if os.uname().machine == 'x86_64' else 0, 4096, ctypes.byref(ctx)) != 0:  # io_setup
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
return 1.0
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("attack", ["memfd_create", "io_setup"])
def test_no_memory_outside_the_limit_and_no_share_of_the_hosts_aio(isolation, attack):
    """memfd_create gave ~1 GiB beyond RLIMIT_AS (62 descriptors of 16 MiB); io_setup took the host's whole
    fs.aio-max-nr for the batch."""
    assert_contained(family(MEMORY_OUTSIDE if attack == "memfd_create" else AIO), isolation, "PermissionError")


DEEP_REPLY = """
channel = judge.__self__  # the family's own end of the protocol pipe, with its request id
nested = '[' * t['depth'] + '1' + ']' * t['depth']
os.write(4, ('{"id": %d, "ok": true, "results": [%s]}\\n' % (channel.call_id, nested)).encode())
time.sleep(5)
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("depth", [900, 5000])
def test_a_deeply_nested_reply_is_one_line_not_a_recursion_error_in_the_engine(isolation, depth):
    """The worker parsed it from a shallow stack; the engine, deeper in its own, raised RecursionError."""
    import sys

    def deeper(n):  # the engine calls the sandbox from well inside its own stack
        if n:
            return deeper(n - 1)
        return assert_contained(family(DEEP_REPLY), isolation, "no valid reply", t={"depth": depth})

    deeper(sys.getrecursionlimit() // 5)


def test_instance_data_nested_too_deep_for_the_engine_is_refused():
    from acdc_engine.plugins.sandbox.sandbox_pool import MAX_DEPTH
    from acdc_engine.tasks import TaskCodeError

    source = ("class TaskFamily:\n    @staticmethod\n    def get_tasks():\n"
              f"        return {{'1': {'[' * MAX_DEPTH}0{']' * MAX_DEPTH}}}\n")
    with pytest.raises(TaskCodeError, match=f"nested deeper than {MAX_DEPTH} levels"):
        sandbox.run_task_code(source, [{"op": "tasks"}], timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_programs_run_under_the_configured_isolation(isolation):
    """acdc_program_passes ran every program under 'auto', whatever sandbox.isolation said."""
    from acdc_engine.config import SandboxConfig

    jailed = "import os\nassert os.getcwd() == '/tmp' and not os.path.exists('/etc')\n"
    limits = SandboxConfig(timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB, isolation=isolation)
    assert sandbox.Sandbox().acdc_program_passes(program=jailed, limits=limits) is (isolation == "bubblewrap")


@pytest.mark.skipif(os.geteuid() != 0, reason="task code runs as another uid only where the engine is root")
def test_the_fallback_cannot_read_a_runs_files_even_in_an_open_folder(tmp_path_factory):
    """Without the jail task code sees the host's files as its own uid: a run's folder is the user's alone."""
    import shutil
    import tempfile

    from acdc_engine.store import RunStore

    open_folder = Path(tempfile.mkdtemp(prefix="acdc-open-", dir="/tmp"))
    try:
        open_folder.chmod(0o755)  # as a user's project folder usually is
        RunStore.create(open_folder / "run", "{}").close()
        body = ("for path in t['paths']:\n"
                "    try: open(path, 'rb').read(1)\n"
                "    except PermissionError: continue\n"
                "    raise RuntimeError('read ' + path)\n"
                "os.listdir(t['open'])\n"  # the open folder itself stays readable: the test reaches it
                "return 1.0")
        paths = [str(open_folder / "run" / "run.sqlite"), str(open_folder / "run" / "weights")]
        assert run(family(body), "rlimits", t={"paths": paths, "open": str(open_folder)}) == 1.0
    finally:
        shutil.rmtree(open_folder)


SCAN_OWN_MEMORY = """
h1, h2 = t['h1'].encode(), t['h2'].encode()
found = 0
for line in open('/proc/self/maps'):
    parts = line.split()
    if not parts[1].startswith('r') or (len(parts) > 5 and (parts[5].startswith('/') or parts[5].startswith('[v'))):
        continue  # unreadable, a file's mapping (the interpreter, libraries), or the kernel's vdso/vvar
    start, end = (int(x, 16) for x in parts[0].split('-'))
    data = ctypes.string_at(start, end - start)  # /proc/self/mem is refused: the process is not dumpable
    i = data.find(h1)
    while i >= 0:
        found += data[i + len(h1):i + len(h1) + len(h2)] == h2
        i = data.find(h1, i + 1)
return min(found, 100) / 100
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_family_finds_nothing_of_earlier_families_in_its_own_memory(isolation):
    """Each batch's process starts from memory that never held another family's request or reply."""
    import secrets

    secret = secrets.token_hex(16)  # 32 characters: a submission and an instance of another family
    calls = [{"op": "score", "t": {"key": secret}, "submission": secret}]
    assert sandbox.run_task_code(GOOD, calls, timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB, isolation=isolation) == [0.0]
    halves = {"h1": secret[:16], "h2": secret[16:]}  # never whole in this family's own request
    assert run(family(SCAN_OWN_MEMORY), isolation, t=halves) == 0.0
