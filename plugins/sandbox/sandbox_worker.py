"""A long-lived worker that runs untrusted task-family code, inside the sandbox.

Started as ``python -I -S sandbox_worker.py MEMORY_MB ISOLATION UID``; standard
library only. The worker is a *zygote*: it runs no task code itself. Before
anything else it moves its protocol pipes (the original stdin and stdout) to
private descriptors and points fds 0-2 at /dev/null (the task code's prints go
nowhere) and imports :data:`PRELOAD`. Started as root, it becomes ``UID`` (a
uid of its own, no groups, no capabilities; ``-`` where the engine is not
root), so that the host's file modes and signal permissions hold against it.
Then it caps itself with rlimits, drops every capability, makes itself
non-dumpable and writes ``{"ready": true, "seccomp": bool, "uid": int}`` (or
``{"ready": false, "error": str}``), and serves one JSON line per request::

    request  {"id": n, "source": str, "calls": [call, ...], "cpu_s": int}
    reply    {"id": n, "ok": true, "results": [...]}
           | {"id": n, "ok": false, "error": "one line"}

Each request is served by a process forked for it alone by the zygote's
*mother* process (see :class:`Mother`), which never reads a request: a fresh
interpreter whose memory holds nothing of other families, so nothing one
family does to modules, builtins or ``__main__`` reaches another, nor can it
read what another was given or answered. That process is forked ahead of its request;
it caps its threads where the worker has a uid of its own and installs a
seccomp filter (see :func:`_seccomp_program`) before it reads the request,
then takes a hard CPU limit and runs the source and the calls. The
zygote relays its ``judge`` calls and its reply, then kills it (``SIGKILL``,
threads and timers included) and wipes the private ``/tmp`` and ``/dev/shm``
(the private cwd without the jail) before the next request: nothing of a
family runs, or is left, after its batch.

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
import signal
import socket
import stat
import struct
import sys

FAMILY_FILES = 64  # RLIMIT_NOFILE of a family's process
ZYGOTE_FILES = FAMILY_FILES + 8  # the family's pipe pair, the engine's, the mother's socket, /dev/null
FAMILY_TASKS = 64  # RLIMIT_NPROC of a family's process (threads count) where the worker has a uid of its own
SETUP_FAILED = 70  # exit status of a family's process that could not get ready (EX_SOFTWARE)
REPLY_LIMIT = 16 * 1024 * 1024
JAIL_SCRATCH = ("/tmp", "/dev/shm")  # private tmpfs under bubblewrap: wiped after every request
#: Imported by the zygote before it gives up root: a family finds them loaded (its batch starts sooner),
#: and can import them even where the interpreter's own files are not readable by the worker's uid
#: (a Python under /root, without the jail).
PRELOAD = ("abc", "array", "ast", "base64", "binascii", "bisect", "calendar", "collections", "contextlib", "copy",
           "csv", "dataclasses", "datetime", "decimal", "difflib", "enum", "fractions", "functools", "hashlib",
           "heapq", "html", "io", "itertools", "math", "numbers", "operator", "pprint", "random", "re", "select",
           "socket", "statistics", "string", "struct", "subprocess", "textwrap", "threading", "time", "typing",
           "unicodedata", "zlib", "encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_16",
           "encodings.utf_32")
CLONE_THREAD = 0x00010000
#: Commands refused to ``fcntl`` (F_SETOWN, F_SETSIG, F_SETOWN_EX, F_SETLEASE, F_NOTIFY) and ``ioctl``
#: (FIOSETOWN, SIOCSPGRP, TIOCSPGRP, TIOCSTI): each aims a signal at a process of the caller's choosing
#: or reaches a terminal.
FCNTL_REFUSED = (8, 10, 15, 1024, 1026)
IOCTL_REFUSED = (0x8901, 0x8902, 0x5410, 0x5412)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
#: Per machine: audit arch; the syscall numbers of clone and clone3; syscalls allowed only on the
#: caller itself (first argument its own pid, or 0 where ``self_zero``); fcntl, ioctl and prctl (argument
#: checked); whether the x32 ABI exists; and the syscalls refused outright.
SYSCALLS = {
    "x86_64": dict(arch=0xC000003E, clone=56, clone3=435, own_pid=(62, 234), self_zero=(302,), fcntl=72,
                   ioctl=16, prctl=157, x32=True, refused=(
        57, 58, 59, 322,  # fork, vfork, execve, execveat
        101, 310, 311, 312, 440,  # ptrace, process_vm_readv/writev, kcmp, process_madvise
        200, 129, 297, 424, 434, 438,  # tkill, rt_(tg)sigqueueinfo, pidfd_send_signal/open/getfd
        222, 240, 241, 242, 243, 244, 245,  # timer_create, mq_open ... mq_getsetattr
        29, 30, 31, 64, 65, 66, 67, 68, 69, 70, 71, 220,  # SysV shm, sem, msg
        41, 53,  # socket, socketpair
        248, 249, 250,  # add_key, request_key, keyctl
        425, 426, 427,  # io_uring
        321, 298, 323, 447,  # bpf, perf_event_open, userfaultfd, memfd_secret
        319, 206,  # memfd_create (memory outside RLIMIT_AS), io_setup (the host's aio-max-nr)
        141, 142, 144, 203, 314, 251, 256, 279,  # setpriority, sched_set*, ioprio_set, migrate/move_pages
        272, 308, 165, 166, 155, 161, 428, 429, 430, 431, 432, 433, 442,  # namespaces and mounts
        103, 163, 167, 168, 169, 175, 176, 246, 313, 320)),  # syslog, acct, swap, reboot, modules, kexec
    "aarch64": dict(arch=0xC00000B7, clone=220, clone3=435, own_pid=(129, 131), self_zero=(261,), fcntl=25,
                    ioctl=29, prctl=167, x32=False, refused=(
        221, 281, 117, 270, 271, 272, 440, 130, 138, 240, 424, 434, 438,
        107, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197,
        198, 199, 217, 218, 219, 425, 426, 427, 280, 241, 282, 447, 279, 0,
        140, 118, 119, 122, 274, 30, 238, 239, 97, 268, 40, 39, 41, 51, 428, 429, 430, 431, 432, 433, 442,
        116, 89, 224, 225, 142, 105, 106, 104, 273, 294)),
}


def _seccomp_program(spec, pid):
    """A classic-BPF seccomp filter for one family's process (``pid``).

    Refused (EPERM): new processes (fork, vfork, clone but for threads),
    ``execve``; ``ptrace`` and other processes' memory; every way to signal
    or tune a process other than itself (kill, tgkill and prlimit on its own
    pid only; fcntl/ioctl owners of signal-on-I/O; scheduling of others);
    state that could outlive the family or pass to the next one (sockets,
    SysV and POSIX IPC, keyrings, timers); io_uring (it bypasses this
    filter), bpf, perf, userfaultfd; namespaces, mounts and the
    administrator's syscalls; making itself dumpable again or outliving the
    zygote (``PR_SET_PDEATHSIG``); memory outside ``RLIMIT_AS``
    (``memfd_create``) and the host's AIO contexts (``io_setup``). clone3 answers
    ENOSYS (glibc then falls back to clone for threads); any other
    architecture's syscalls (i386 through int 0x80, x32) are refused.
    """
    allow, deny, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    arg0, arg1 = 16, 24  # low 32 bits of the first and second arguments (little-endian)
    body = [("ld", 4), ("jeq", spec["arch"], None, "deny"), ("ld", 0)]
    if spec["x32"]:
        body.append(("jge", 0x40000000, "deny", None))
    body += [("jeq", nr, "deny", None) for nr in spec["refused"]]
    body += [("jeq", nr, "own", None) for nr in spec["own_pid"]]
    body += [("jeq", nr, "self", None) for nr in spec["self_zero"]]
    body += [("jeq", spec["fcntl"], "fcntl", None), ("jeq", spec["ioctl"], "ioctl", None),
             ("jeq", spec["prctl"], "prctl", None),
             ("jeq", spec["clone3"], "enosys", None), ("jeq", spec["clone"], None, "allow"), ("ld", arg0),
             ("jset", CLONE_THREAD, "allow", "deny"),
             "self", ("ld", arg0), ("jeq", 0, "allow", None), ("jeq", pid, "allow", "deny"),
             "own", ("ld", arg0), ("jeq", pid, "allow", "deny"),
             "fcntl", ("ld", arg1), *[("jeq", cmd, "deny", None) for cmd in FCNTL_REFUSED], ("ja", "allow"),
             "ioctl", ("ld", arg1), *[("jeq", cmd, "deny", None) for cmd in IOCTL_REFUSED], ("ja", "allow"),
             "prctl", ("ld", arg0), ("jeq", PR_SET_DUMPABLE, "deny", None), ("jeq", PR_SET_PDEATHSIG, "deny", "allow")]
    labels, code = {}, []
    for item in body:
        if isinstance(item, str):
            labels[item] = len(code)
        else:
            code.append(item)
    labels.update(allow=len(code), deny=len(code) + 1, enosys=len(code) + 2)
    codes = {"ld": 0x20, "jeq": 0x15, "jge": 0x35, "jset": 0x45, "ja": 0x05}
    out = b""
    for pc, (op, *rest) in enumerate(code):
        if op == "ja":  # an unconditional jump: its offset is k
            out += struct.pack("=HBBI", codes[op], 0, 0, labels[rest[0]] - pc - 1)
            continue
        k, *jumps = rest
        jt, jf = [(labels[j] - pc - 1) if j else 0 for j in jumps] or (0, 0)
        if max(jt, jf) > 255:
            raise ValueError("seccomp program: a conditional jump beyond 255 instructions")
        out += struct.pack("=HBBI", codes[op], jt, jf, k)
    return out + b"".join(struct.pack("=HBBI", 0x06, 0, 0, ret) for ret in (allow, deny, enosys))


LIBC = ctypes.CDLL(None, use_errno=True)  # loaded once by the zygote; each family inherits it


def _prctl(*args):
    return LIBC.prctl(*[a if isinstance(a, ctypes.c_void_p) else ctypes.c_ulong(a) for a in args])


def _give_up_root(uid):
    """As root: becomes ``uid`` (a uid no account uses), with no groups and no capabilities. Returns why it
    could not, or None. Not root: nothing to give up."""
    if os.geteuid() != 0:
        return None
    if uid is None:
        return "the worker runs as root and was given no uid to run as"
    try:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        return f"could not give up root for uid {uid}: {exc.strerror}"
    if 0 in os.getresuid() or 0 in os.getresgid():
        return "still uid 0 after setresuid"
    return None


def _limit_self(memory_mb):
    """rlimits, death with the parent, no core dumps, no privileges and no access to the process's memory
    from outside."""
    for name, value in (
        ("RLIMIT_AS", memory_mb * 1024 * 1024),
        ("RLIMIT_FSIZE", 1 << 24),
        ("RLIMIT_NOFILE", ZYGOTE_FILES),
        ("RLIMIT_NPROC", 256),  # binds only a uid that is not root (see docs/architecture.md)
        ("RLIMIT_CORE", 0),
    ):
        hard = resource.getrlimit(getattr(resource, name))[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)  # never above what we were given
        resource.setrlimit(getattr(resource, name), (value, value))
    _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # siblings cannot open each other's /proc/PID/mem
    _prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no set-uid program gives anything back
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    LIBC.capset(header, (ctypes.c_uint32 * 6)())  # no capabilities (root or not)


class SockFprog(ctypes.Structure):
    """``struct sock_fprog``: a classic-BPF program for PR_SET_SECCOMP."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _install_seccomp():
    """The family process's filter; False where the architecture is unknown or the kernel refuses."""
    spec = SYSCALLS.get(platform.machine())
    if spec is None:
        return False
    program = ctypes.create_string_buffer(_seccomp_program(spec, os.getpid()))
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
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"score() returned {value!r}, outside [0, 1]")
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


def _serve(request, channel):
    """Runs one request's calls in the family's process; returns the reply."""
    stage = "loading the source"
    try:
        namespace = {"__name__": "task_family", "judge": channel.judge}
        exec(compile(request["source"], "<task family>", "exec"), namespace)
        family = namespace.get("TaskFamily")
        if family is None:
            raise NameError("the source defines no class TaskFamily")
        results = []
        for call in request["calls"]:
            stage = STAGES.get(call["op"], f"{call['op']}()")
            results.append(_run_call(family, call))
    except BaseException as exc:  # noqa: BLE001 - anything task code does is reported
        message = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
        return {"ok": False, "error": f"{stage} raised {type(exc).__name__}: {message}".rstrip(": ")}
    return {"ok": True, "results": results}


def _family_main(channel, mother, own_uid):
    """A family's process: limits itself, installs the filter, then serves one request and waits to be
    killed."""
    _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG (a fork does not inherit it)
    if os.getppid() != mother:
        os._exit(0)
    if own_uid:  # the count is this uid's alone: the worker's (only one family runs at a time)
        resource.setrlimit(resource.RLIMIT_NPROC, (FAMILY_TASKS, FAMILY_TASKS))
    # the zygote found the filter working (or SYSCALLS emptied): never run task code without it
    filtered = _install_seccomp() or not SYSCALLS.get(platform.machine())
    request = channel.receive()
    cpu_s = max(1, int(request["cpu_s"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL a second later
    channel.call_id = request["id"]
    reply = _serve(request, channel) if filtered else \
        {"ok": False, "error": "the family's process could not install its seccomp filter"}
    try:
        channel.send({"id": request["id"], **reply})
    except (TypeError, ValueError) as exc:  # not JSON, NaN, or not UTF-8
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        channel.send({"id": request["id"], "ok": False, "error": f"results are not valid JSON text: {reason}"})
    os._exit(0)


class Mother:
    """The process that forks every family: a child of the zygote forked before the zygote reads any
    request, which itself never reads one. So a family's process starts from memory that holds nothing
    of any other family (a fork of the zygote would carry the earlier requests and replies it read).

    It serves two commands on a socket pair: ``spawn`` forks a family's process and passes its pid and
    the zygote's ends of its pipes over (``SCM_RIGHTS``); ``reap PID`` waits for that process and
    answers its wait status.
    """

    def __init__(self, own_uid, engine_fds):
        zygote_end, mother_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.pid = os.fork()
        if self.pid == 0:
            status = SETUP_FAILED
            try:
                zygote_end.close()
                for fd in engine_fds:  # the engine's pipes are the zygote's alone
                    os.close(fd)
                _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: dies with the zygote
                status = 0
                self._serve(mother_end, own_uid)
            finally:
                os._exit(status)
        mother_end.close()
        self.sock = zygote_end
        self.lines = zygote_end.makefile("rb")

    @staticmethod
    def _serve(sock, own_uid):
        lines = sock.makefile("rb")
        for command in lines:
            if command == b"spawn\n":
                down_r, down_w = os.pipe()
                up_r, up_w = os.pipe()
                mother = os.getpid()
                pid = os.fork()
                if pid == 0:  # the family: keep only its own pipe ends
                    status = SETUP_FAILED
                    try:
                        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 5) for fd in (down_r, up_w)]
                        os.dup2(high[0], 3)
                        os.dup2(high[1], 4)
                        os.closerange(5, ZYGOTE_FILES)
                        resource.setrlimit(resource.RLIMIT_NOFILE, (FAMILY_FILES, FAMILY_FILES))
                        status = 0
                        _family_main(Channel(3, 4), mother, own_uid)
                    finally:
                        os._exit(status)
                os.close(down_r)
                os.close(up_w)
                socket.send_fds(sock, [f"{pid}\n".encode()], [down_w, up_r])
                os.close(down_w)
                os.close(up_r)
            elif command.startswith(b"reap "):
                try:
                    _, status = os.waitpid(int(command.split()[1]), 0)
                except ChildProcessError:
                    status = -1
                sock.sendall(f"{status}\n".encode())
            else:
                return

    def spawn(self):
        """A new family process, waiting for its request."""
        self.sock.sendall(b"spawn\n")
        message, fds, _, _ = socket.recv_fds(self.sock, 64, 2)
        if len(fds) != 2 or not message.endswith(b"\n"):
            raise RuntimeError("the mother process did not hand over a family")
        return Family(int(message), *fds)

    def reap(self, pid):
        """The wait status of a killed family process (None if it was not the mother's)."""
        self.sock.sendall(f"reap {pid}\n".encode())
        status = int(self.lines.readline() or -1)
        return None if status < 0 else status


class Family:
    """The zygote's handle on the process that will serve one request: its pid and pipes.

    It is forked ahead, while the engine is busy elsewhere, and waits for its
    request with its limits and filter already in place.
    """

    def __init__(self, pid, to_family, from_family):
        self.pid, self.to_family, self.reader = pid, to_family, os.fdopen(from_family, "rb")

    def send(self, payload):
        data = (json.dumps(payload) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self.to_family, view):]

    def end(self, mother):
        """Kills the process with everything it started (its threads, timers) and has the mother reap it
        (killed first, so its pid cannot be reused before); returns its wait status."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status = mother.reap(self.pid)
        os.close(self.to_family)
        self.reader.close()
        return status

    @staticmethod
    def death(status):
        """Why the family's process ended before its reply."""
        if status is None:
            return "no valid reply (the family's process is gone)"
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            return f"killed by {name}" + (" (CPU time limit)" if name == "SIGXCPU" else "")
        if os.WEXITSTATUS(status) == SETUP_FAILED:
            return "the family's process could not start"
        return f"no valid reply (exit status {os.WEXITSTATUS(status)})"


def _relay(request, engine, family):
    """Relays the family's judge calls; returns its reply, or None where it ended without one."""
    try:
        while True:
            line = family.reader.readline(REPLY_LIMIT + 1)
            if not line:
                return None
            if not line.endswith(b"\n"):
                return {"ok": False, "error": f"reply larger than {REPLY_LIMIT} bytes"}
            try:
                message = json.loads(line.decode("utf-8"))
            except (ValueError, RecursionError):
                return {"ok": False, "error": "no valid reply (garbage on the protocol pipe)"}
            if not isinstance(message, dict):
                return {"ok": False, "error": "no valid reply (garbage on the protocol pipe)"}
            if "judge" in message:
                asked = message["judge"]
                if not (isinstance(asked, list) and len(asked) == 3 and all(isinstance(x, str) for x in asked)):
                    return {"ok": False, "error": "malformed judge() request on the protocol pipe"}
                try:
                    engine.send({"id": request["id"], "judge": asked})
                except ValueError:  # text that is not UTF-8 (lone surrogates): nothing was written
                    return {"ok": False, "error": "malformed judge() request on the protocol pipe"}
                family.send(engine.receive())
                continue
            if message.get("id") != request["id"]:
                return {"ok": False, "error": "no valid reply (a reply out of step: task code wrote on "
                                              "the protocol pipe)"}
            return {k: v for k, v in message.items() if k != "id"}
    except BrokenPipeError:
        return None


def empty_folder(top):
    """Removes everything inside ``top`` (not ``top`` itself), however deep the tree and whatever modes task
    code left on it. Depth first with one open descriptor and no recursion (``shutil.rmtree`` holds one
    descriptor per level, so ``RLIMIT_NOFILE`` stops it about 60 levels down, and recurses, so the
    recursion limit stops it about 1,000 down); a folder left unreadable (mode 000) is made its owner's
    again; no link is followed, and each step back up checks that it lands in the folder it came from (never
    elsewhere, even if a folder was moved meanwhile). What this uid cannot remove is left."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        here = os.open(top, flags)
    except OSError:
        return
    try:
        stack = [(None, _identity(here), iter(os.listdir(here)))]  # (name in its parent, (dev, ino), entries left)
        while True:
            deeper = None
            for name in stack[-1][2]:
                try:
                    if not stat.S_ISDIR(os.stat(name, dir_fd=here, follow_symlinks=False).st_mode):
                        os.unlink(name, dir_fd=here)
                        continue
                    _own_again(name, here)  # mode 000 or 500: its owner may make it its own again
                    deeper = os.open(name, flags, dir_fd=here)
                except OSError:
                    continue
                break
            if deeper is not None:
                os.close(here)
                here = deeper
                stack.append((name, _identity(here), iter(os.listdir(here))))
                continue
            if len(stack) == 1:
                return
            name = stack.pop()[0]
            parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=here)
            os.close(here)
            here = parent
            if _identity(here) != stack[-1][1]:
                return  # moved while we were below: stop rather than wipe anywhere else
            try:
                os.rmdir(name, dir_fd=here)
            except OSError:
                pass
    except OSError:
        return
    finally:
        os.close(here)


def _identity(fd):
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _own_again(name, folder):
    """Gives a folder back its owner's rwx (a no-op for files and links, and for root, who needs none)."""
    if os.geteuid() == 0:
        return
    try:
        if stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            os.chmod(name, 0o700, dir_fd=folder, follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass


def _wipe(places):
    """Leaves the scratch folders as the next request should find them."""
    for home in places:
        empty_folder(home)


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
    memory_mb, isolation, uid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    scratch = list(JAIL_SCRATCH) if isolation == "bubblewrap" else [os.getcwd()]  # else the private cwd only
    for name in PRELOAD:
        __import__(name)
    problem = _give_up_root(None if uid == "-" else int(uid))
    if problem:
        engine.send({"ready": False, "error": problem})
        return
    own_uid = uid != "-"
    _limit_self(memory_mb)
    seccomp = _seccomp_works()
    if not seccomp:
        SYSCALLS.clear()  # families then run without the filter (the engine warns)
    mother = Mother(own_uid, (engine.reader.fileno(), engine.out))  # before any request is read
    engine.send({"ready": True, "seccomp": seccomp, "uid": os.getuid()})
    spare = mother.spawn()
    while True:
        request = engine.receive()
        family, spare = spare, None
        try:
            family.send(request)
            reply = _relay(request, engine, family)
        except BrokenPipeError:  # it died before its request
            reply = None
        status = family.end(mother)  # nothing of the family outlives its request
        if reply is None:
            reply = {"ok": False, "error": Family.death(status)}
        _wipe(scratch)
        try:
            engine.send({"id": request["id"], **reply})
        except (TypeError, ValueError, RecursionError) as exc:  # a family's reply that does not serialise again
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            engine.send({"id": request["id"], "ok": False, "error": f"results are not valid JSON text: {reason}"})
        spare = mother.spawn()  # the next batch's process, made while the engine reads this reply


if __name__ == "__main__":
    main()
