"""How a sandbox worker is started: under bubblewrap where it runs, else a plain subprocess.

bubblewrap gives the worker new user, pid, network, ipc, uts and cgroup
namespaces (no network but a private ``lo``, nothing outside its pid
namespace to signal), a read-only view of the system and the Python prefix
only (no run directory, no $HOME, ``/`` itself read-only) and a private
size-capped tmpfs on ``/tmp``. Whether it can run is probed once per
process; where it cannot, workers run as today's rlimited ``python -I -S``
subprocess in a private temporary directory, with a one-time warning.
"""

from __future__ import annotations

import functools
import logging
import os
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
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """The command line that starts one worker, and how it is isolated.

    ``isolation`` is ``bubblewrap`` or ``rlimits``; with ``rlimits`` the
    pool gives each worker a private temporary directory as cwd and $HOME.
    """

    argv: tuple[str, ...]
    isolation: str


def python_binary() -> str:
    """The real interpreter (a venv's ``bin/python`` is usually a symlink)."""
    return os.path.realpath(sys.executable)


def bubblewrap_prefix() -> list[str]:
    """``bwrap`` and its options, up to the command it runs."""
    python = python_binary()
    prefixes = {os.path.realpath(sys.base_prefix)}
    if python.startswith(os.path.realpath(sys.prefix) + os.sep):  # a venv made with --copies
        prefixes.add(os.path.realpath(sys.prefix))
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for path in SYSTEM_DIRS:
        argv += ["--ro-bind-try", path, path]
    for prefix in sorted(prefixes):
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--ro-bind", str(WORKER), WORKER_INSIDE, "--proc", "/proc", "--dev", "/dev",
             "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
             "--size", str(TMP_BYTES), "--tmpfs", "/tmp", "--remount-ro", "/", "--chdir", "/tmp"]
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
    return Launch((python_binary(), "-I", "-S", str(WORKER), str(memory_mb)), "rlimits")
