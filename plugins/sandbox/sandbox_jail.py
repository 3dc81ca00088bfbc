"""How a sandbox worker is started: under bubblewrap where it runs, else a plain subprocess.

bubblewrap gives the worker new pid, network, ipc, uts and cgroup namespaces
(no network but a private ``lo``, nothing outside its pid namespace to
signal), a read-only view of the system and the Python prefix only (no run
directory, no $HOME, ``/`` itself read-only) and private size-capped tmpfs on
``/tmp`` and ``/dev/shm``. Not as root it adds a user namespace (the user's
uid maps to itself). As root no user namespace is made: the worker keeps
only ``CAP_SETUID``/``CAP_SETGID`` and gives up root at once for a uid of its
own (see :func:`worker_uid`), because uid 0 inside bubblewrap's user
namespace is the host's uid 0 and may write the host's kernel settings under
``/proc/sys``. Whether bubblewrap can run is probed once per process; where
it cannot, workers run as an rlimited ``python -I -S`` subprocess in a
private temporary directory (also under a uid of its own as root), with a
one-time warning.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from acdc_engine.api import AcdcError

WORKER = Path(__file__).with_name("sandbox_worker.py")
WORKER_INSIDE = "/sandbox/worker.py"
TMP_BYTES = 64 * 1024 * 1024
SHM_BYTES = 8 * 1024 * 1024
#: The environment of every worker (nothing of the engine's leaks in).
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp"}
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
#: As root, each worker runs under a uid drawn from here: no account uses it, no file outside the
#: worker's own tmpfs belongs to it, and no other worker shares it (so neither signals nor
#: ``RLIMIT_NPROC`` counts cross between workers).
UID_FIRST, UID_COUNT = 2_000_000_000, 1 << 27
NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """The command line that starts one worker, and how it is isolated.

    ``isolation`` is ``bubblewrap`` or ``rlimits``; with ``rlimits`` the
    pool gives each worker a private temporary directory as cwd and $HOME.
    """

    argv: tuple[str, ...]
    isolation: str

    def argv_for(self, uid: int | None) -> list[str]:
        """The command line of one worker, which runs as ``uid`` (``None``: as the engine's user)."""
        return [*self.argv, "-" if uid is None else str(uid)]


def worker_uid() -> int | None:
    """A fresh uid for one worker where the engine is root, else ``None`` (workers keep the user's)."""
    return UID_FIRST + secrets.randbelow(UID_COUNT) if os.geteuid() == 0 else None


def _ancestors(path: str) -> list[str]:
    """The folders above ``path``, outermost first (``/a/b/c`` -> ``/a``, ``/a/b``)."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def python_binary() -> str:
    """The real interpreter (a venv's ``bin/python`` is usually a symlink)."""
    return os.path.realpath(sys.executable)


def bubblewrap_prefix() -> list[str]:
    """``bwrap`` and its options, up to the command it runs."""
    python = python_binary()
    prefixes = {os.path.realpath(sys.base_prefix)}
    if python.startswith(os.path.realpath(sys.prefix) + os.sep):  # a venv made with --copies
        prefixes.add(os.path.realpath(sys.prefix))
    if os.geteuid() == 0:  # no user namespace: the worker gives up root itself (sandbox_worker.py)
        argv = ["bwrap", *NAMESPACES, "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for path in SYSTEM_DIRS:
        argv += ["--ro-bind-try", path, path]
    made = set()
    for prefix in sorted(prefixes):  # the folders above it readable by the worker's uid (bwrap makes them 0700)
        for folder in _ancestors(prefix):
            if folder not in made and folder not in SYSTEM_DIRS:
                argv += ["--perms", "0755", "--dir", folder]
                made.add(folder)
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--perms", "0755", "--dir", os.path.dirname(WORKER_INSIDE), "--ro-bind", str(WORKER), WORKER_INSIDE,
             "--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
             "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp", "--remount-ro", "/", "--chdir", "/tmp"]
    return argv


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot run a Python here, or ``None`` if it can (probed once)."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed"
    try:
        probe = subprocess.run([*bubblewrap_prefix(), python_binary(), "-I", "-S", "-c", "print('ok')"],
                               capture_output=True, timeout=60, env=ENV)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed: {exc}"
    if probe.stdout.strip() != b"ok":
        detail = (probe.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {probe.returncode}"])[0]
        return f"bwrap failed: {detail}"
    return None


@functools.cache
def _warn_fallback(problem: str) -> None:
    log.warning("bubblewrap cannot run here (%s): task code runs in a plain rlimited subprocess, without "
                "private filesystem, network or pid namespaces; install bubblewrap (scripts/setup.sh does)", problem)


def launch_for(isolation: str, memory_mb: int) -> Launch:
    """The worker command for ``sandbox.isolation`` (``auto``, ``bubblewrap`` or ``rlimits``)."""
    if isolation not in ("auto", "bubblewrap", "rlimits"):
        raise AcdcError(f"sandbox.isolation {isolation!r}: expected auto, bubblewrap or rlimits")
    if isolation != "rlimits":
        problem = bubblewrap_problem()
        if problem is None:
            return Launch((*bubblewrap_prefix(), python_binary(), "-I", "-S", WORKER_INSIDE, str(memory_mb),
                           "bubblewrap"), "bubblewrap")
        if isolation == "bubblewrap":
            raise AcdcError(f"sandbox.isolation is 'bubblewrap' but {problem}")
        _warn_fallback(problem)
    return Launch((python_binary(), "-I", "-S", str(WORKER), str(memory_mb), "rlimits"), "rlimits")
