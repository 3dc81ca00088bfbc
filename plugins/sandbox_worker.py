"""A long-lived worker that runs untrusted task-family code, inside the sandbox.

Started as ``python -I -S sandbox_worker.py MEMORY_MB [bubblewrap]``; standard library
only. The worker is a *zygote*: it runs no task code itself. Before anything
else it moves its protocol pipes (the original stdin and stdout) to private
descriptors, points fds 0-2 at /dev/null (the task code's prints go
nowhere), caps itself with rlimits, drops every capability, makes itself non-dumpable and writes
``{"ready": true, "seccomp": bool}``. Then it serves one JSON line per
request::

    request  {"id": n, "digest": str, "source": str, "calls": [call, ...], "cpu_s": int}
    reply    {"id": n, "ok": true, "results": [...]}
           | {"id": n, "ok": false, "error": "one line"}

Each family (source digest) is served by a child forked from the zygote for
it alone: a fresh interpreter, so nothing one family does to modules,
builtins or ``__main__`` reaches another. The child installs a seccomp
filter (no new processes, no ``execve``, no ``ptrace``, signals only to
itself), runs the source once and keeps its namespace. It runs only while
one of its family's requests is in flight: the zygote relays the request,
its ``judge`` calls and its reply, then stops the child (``SIGSTOP``) and
wipes the private ``/tmp`` and ``/dev/shm`` before the next request. Stopped
children are cached (least recently used first out) while their resident
memory adds up to at most ``MEMORY_MB`` and they number at most
:data:`CACHE_SIZE`.

A call is ``{"op": "tasks"}``, ``{"op": "instructions", "t": ...}`` or
``{"op": "score", "t": ..., "submission": str}``. Task code may call the global
``judge(question, answer, rubric)``: the worker writes
``{"id": n, "judge": [question, answer, rubric]}`` and reads back
``{"value": float}`` or ``{"error": str}``.
"""

import ctypes
import fcntl
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
FAMILY_FILES = 64  # RLIMIT_NOFILE of a family's process
ZYGOTE_FILES = FAMILY_FILES + 2 * CACHE_SIZE  # two pipe ends per cached family, and the zygote's own
SETUP_FAILED = 70  # exit status of a family's process that could not get ready (EX_SOFTWARE)
REPLY_LIMIT = 16 * 1024 * 1024
JAIL_SCRATCH = ("/tmp", "/dev/shm")  # private tmpfs under bubblewrap: wiped after every request
CLONE_THREAD = 0x00010000
#: machine: audit arch, clone, syscalls refused outright, clone3, kill and tgkill (own pid only),
#: whether the x32 ABI exists
SYSCALLS = {
    "x86_64": dict(arch=0xC000003E, clone=56, clone3=435, own_pid=(62, 234), x32=True, refused=(
        57, 58, 59, 322,  # fork, vfork, execve, execveat
        101, 310, 311,  # ptrace, process_vm_readv/writev
        200, 129, 297, 424, 434, 438,  # tkill, rt_(tg)sigqueueinfo, pidfd_send_signal/open/getfd
        272, 308)),  # unshare, setns
    "aarch64": dict(arch=0xC00000B7, clone=220, clone3=435, own_pid=(129, 131), x32=False, refused=(
        221, 281, 117, 270, 271, 130, 138, 240, 424, 434, 438, 97, 268)),
}


def _seccomp_program(spec, pid):
    """A classic-BPF seccomp filter for one family's child (process ``pid``).

    Refused (EPERM): new processes (fork, vfork, clone but for threads),
    ``execve``, ``ptrace`` and reading or writing other processes' memory,
    namespaces, and any signal not sent to ``pid`` itself. clone3 answers
    ENOSYS (glibc then falls back to clone for threads); any other
    architecture's syscalls (i386 through int 0x80, x32) are refused.
    """
    allow, deny, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    body = [("ld", 4), ("jeq", spec["arch"], None, "deny"), ("ld", 0)]
    if spec["x32"]:
        body.append(("jge", 0x40000000, "deny", None))
    body += [("jeq", nr, "deny", None) for nr in spec["refused"]]
    body += [("jeq", nr, "own", None) for nr in spec["own_pid"]]
    body += [("jeq", spec["clone3"], "enosys", None), ("jeq", spec["clone"], None, "allow"), ("ld", 16),
             ("jset", CLONE_THREAD, "allow", "deny"),
             "own", ("ld", 16), ("jeq", pid, "allow", "deny")]  # args[0]: the pid signalled
    labels, code = {}, []
    for item in body:
        if isinstance(item, str):
            labels[item] = len(code)
        else:
            code.append(item)
    labels.update(allow=len(code), deny=len(code) + 1, enosys=len(code) + 2)
    codes = {"ld": 0x20, "jeq": 0x15, "jge": 0x35, "jset": 0x45}
    out = b""
    for pc, (op, k, *jumps) in enumerate(code):
        jt, jf = [(labels[j] - pc - 1) if j else 0 for j in jumps] or (0, 0)
        out += struct.pack("=HBBI", codes[op], jt, jf, k)
    return out + b"".join(struct.pack("=HBBI", 0x06, 0, 0, ret) for ret in (allow, deny, enosys))


def _prctl(*args):
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(*[a if isinstance(a, ctypes.c_void_p) else ctypes.c_ulong(a) for a in args])


def _limit_self(memory_mb):
    """rlimits, death with the parent, no core dumps and no access to the process's memory from outside."""
    for name, value in (
        ("RLIMIT_AS", memory_mb * 1024 * 1024),
        ("RLIMIT_FSIZE", 1 << 24),
        ("RLIMIT_NOFILE", ZYGOTE_FILES),
        ("RLIMIT_NPROC", 256),  # does not bind root (see docs/architecture.md); seccomp does
        ("RLIMIT_CORE", 0),
    ):
        hard = resource.getrlimit(getattr(resource, name))[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)  # never above what we were given
        resource.setrlimit(getattr(resource, name), (value, value))
    _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    _prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: siblings cannot open each other's /proc/PID/mem
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    ctypes.CDLL(None, use_errno=True).capset(header, (ctypes.c_uint32 * 6)())  # no capabilities (root or not)


def _install_seccomp():
    """The family child's filter; False where the architecture is unknown or the kernel refuses."""
    spec = SYSCALLS.get(platform.machine())
    if spec is None:
        return False
    program = ctypes.create_string_buffer(_seccomp_program(spec, os.getpid()))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program.raw) // 8, ctypes.addressof(program))
    if _prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    return _prctl(22, 2, ctypes.c_void_p(ctypes.addressof(fprog)), 0, 0) == 0  # SECCOMP_MODE_FILTER


class JudgeError(Exception):
    """The engine refused or could not answer a judge() call."""


class Channel:
    """One JSON-lines pipe pair: to the engine (the zygote's) or to the zygote (a child's)."""

    def __init__(self, read_fd, write_fd):
        self.reader = os.fdopen(read_fd, "rb")
        self.out = write_fd
        self.call_id = None

    def send(self, payload):
        data = (json.dumps(payload, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self.out, view):]

    def receive(self):
        line = self.reader.readline()
        if not line:
            os._exit(0)  # the other end went away
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


def _serve(request, channel, loaded):
    """Runs one request's calls in a family's child; returns the reply (``loaded``: the family, once run)."""
    used = sum(os.times()[:2])
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = int(used + request["cpu_s"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    stage = "loading the source"
    try:
        if not loaded:
            namespace = {"__name__": "task_family", "judge": channel.judge}
            exec(compile(request["source"], "<task family>", "exec"), namespace)
            if namespace.get("TaskFamily") is None:
                raise NameError("the source defines no class TaskFamily")
            loaded.append(namespace["TaskFamily"])
        results = []
        for call in request["calls"]:
            stage = STAGES.get(call["op"], f"{call['op']}()")
            results.append(_run_call(loaded[0], call))
    except BaseException as exc:  # noqa: BLE001 - anything task code does is reported
        message = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
        return {"ok": False, "error": f"{stage} raised {type(exc).__name__}: {message}".rstrip(": ")}
    return {"ok": True, "results": results}


def _child_main(channel, zygote):
    """A family's child: serves its requests until the zygote goes away or kills it."""
    _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG (a fork does not inherit it)
    if os.getppid() != zygote:
        os._exit(0)
    # the zygote found the filter working (or SYSCALLS emptied): never run task code without it
    filtered = _install_seccomp() or not SYSCALLS.get(platform.machine())
    home, loaded = os.getcwd(), []
    while True:
        request = channel.receive()
        try:
            os.chdir(home)  # wherever the last request left it
        except OSError:
            pass
        channel.call_id = request["id"]
        reply = _serve(request, channel, loaded) if filtered else \
            {"ok": False, "error": "the family's process could not install its seccomp filter"}
        try:
            channel.send({"id": request["id"], **reply})
        except (TypeError, ValueError) as exc:  # not JSON, NaN, or not UTF-8
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            channel.send({"id": request["id"], "ok": False, "error": f"results are not valid JSON text: {reason}"})


class Child:
    """The zygote's handle on one family's child: its pid and pipes."""

    def __init__(self):
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        zygote = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # the child: keep only its own pipe ends (not the engine's, not its siblings')
            status = SETUP_FAILED
            try:
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 5) for fd in (down_r, up_w)]
                os.dup2(high[0], 3)
                os.dup2(high[1], 4)
                os.closerange(5, ZYGOTE_FILES)
                resource.setrlimit(resource.RLIMIT_NOFILE, (FAMILY_FILES, FAMILY_FILES))
                status = 0
                _child_main(Channel(3, 4), zygote)
            finally:
                os._exit(status)
        os.close(down_r)
        os.close(up_w)
        self.to_child, self.reader = down_w, os.fdopen(up_r, "rb")
        self.stopped = False

    def send(self, payload):
        data = (json.dumps(payload) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self.to_child, view):]

    def resident_bytes(self):
        try:
            with open(f"/proc/{self.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def stop(self):
        os.kill(self.pid, signal.SIGSTOP)
        os.waitpid(self.pid, os.WUNTRACED)  # stopped before the scratch space is wiped
        self.stopped = True

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.to_child)
        self.reader.close()

    def death(self):
        """Why the child ended (it has closed its pipe)."""
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return "no valid reply (the family's process is gone)"
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            return f"killed by {name}" + (" (CPU time limit)" if name == "SIGXCPU" else "")
        if os.WEXITSTATUS(status) == SETUP_FAILED:
            return "the family's process could not start"
        return f"no valid reply (exit status {os.WEXITSTATUS(status)})"


def _relay(request, engine, child):
    """Runs one request in ``child``: relays it, its judge calls and its reply; returns (reply, child usable)."""
    if child.stopped:
        os.kill(child.pid, signal.SIGCONT)
        child.stopped = False
    try:
        child.send(request)
        while True:
            line = child.reader.readline(REPLY_LIMIT + 1)
            if not line:
                return {"ok": False, "error": child.death()}, False
            if not line.endswith(b"\n"):
                return {"ok": False, "error": f"reply larger than {REPLY_LIMIT} bytes"}, False
            try:
                message = json.loads(line.decode("utf-8"))
            except ValueError:
                return {"ok": False, "error": "no valid reply (garbage on the protocol pipe)"}, False
            if not isinstance(message, dict):
                return {"ok": False, "error": "no valid reply (garbage on the protocol pipe)"}, False
            if "judge" in message:
                engine.send({"id": request["id"], "judge": message["judge"]})
                child.send(engine.receive())
                continue
            if message.get("id") != request["id"]:
                return {"ok": False, "error": "no valid reply (a reply out of step: task code wrote on "
                                              "the protocol pipe)"}, False
            return {k: v for k, v in message.items() if k != "id"}, True
    except BrokenPipeError:
        return {"ok": False, "error": child.death()}, False


def _wipe(places):
    """Leaves the scratch folders as the next request should find them."""
    for home in places:
        try:
            names = os.listdir(home)
        except OSError:
            continue
        for name in names:
            path = os.path.join(home, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _seccomp_works():
    """Whether a forked child can install the filter (probed once, before any task code)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _install_seccomp() else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def main():
    engine = Channel(os.dup(0), os.dup(1))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    memory_mb, jailed = int(sys.argv[1]), sys.argv[2:] == ["bubblewrap"]
    scratch = list(JAIL_SCRATCH) if jailed else [os.getcwd()]  # without the jail: the private cwd only
    _limit_self(memory_mb)
    seccomp = _seccomp_works()
    if not seccomp:
        SYSCALLS.clear()  # children then run without the filter (the engine warns)
    engine.send({"ready": True, "seccomp": seccomp})
    children = OrderedDict()  # digest -> Child, least recently used first
    while True:
        request = engine.receive()
        digest = request["digest"]
        child = children.pop(digest, None) or Child()
        reply, usable = _relay(request, engine, child)
        if usable:
            child.stop()
            children[digest] = child
        else:
            child.kill()
        _evict(children, memory_mb * 1024 * 1024)
        _wipe(scratch)
        try:
            engine.send({"id": request["id"], **reply})
        except (TypeError, ValueError) as exc:  # a child's reply that does not serialise again
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            engine.send({"id": request["id"], "ok": False, "error": f"results are not valid JSON text: {reason}"})


def _evict(children, budget):
    """Kills the least recently used children beyond :data:`CACHE_SIZE` or the memory budget."""
    while children and (len(children) > CACHE_SIZE or sum(c.resident_bytes() for c in children.values()) > budget):
        children.popitem(last=False)[1].kill()


if __name__ == "__main__":
    main()
