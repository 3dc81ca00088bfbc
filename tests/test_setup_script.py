"""scripts/apt_tools.sh (called by setup.sh): apt's own error lines stay quiet; a failed install is one
warning line that names the reason (another apt holding its lock)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "apt_tools.sh"
LOCKED = """#!/bin/sh
echo "Reading package lists..."
echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
echo "N: Be aware that removing the lock file is not a solution and may break your system." >&2
echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
exit 100
"""


def run_with(tmp_path, apt_get: str, *tools: str) -> subprocess.CompletedProcess:
    """The script with a PATH of a fake apt-get and only the named tools (so bwrap and tmux are missing)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(apt_get)
    (bin_dir / "apt-get").chmod(0o755)
    for tool in ("sed", *tools):
        os.symlink(shutil.which(tool), bin_dir / tool)
    return subprocess.run([shutil.which("bash"), str(SCRIPT)], capture_output=True, text=True, timeout=60,
                          env={"PATH": str(bin_dir)})


def test_a_held_apt_lock_is_one_warning_line_naming_the_reason(tmp_path):
    done = run_with(tmp_path, LOCKED)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == [
        "warning: could not install bubblewrap tmux (another apt holds its lock; try again later); without "
        "bubblewrap the sandbox uses its fallback, without tmux the terminal tests are skipped"]


def test_another_apt_failure_names_its_first_error(tmp_path):
    done = run_with(tmp_path, "#!/bin/sh\necho 'E: Unable to locate package tmux' >&2\nexit 100\n")
    assert done.stdout.splitlines() == ["warning: could not install bubblewrap tmux (Unable to locate package "
                                        "tmux); without bubblewrap the sandbox uses its fallback, without tmux "
                                        "the terminal tests are skipped"]


def test_nothing_to_install_runs_no_apt(tmp_path):
    if not (shutil.which("bwrap") and shutil.which("tmux")):
        import pytest

        pytest.skip("bwrap and tmux are not both installed here")
    done = run_with(tmp_path, "#!/bin/sh\necho called\nexit 1\n", "bwrap", "tmux")
    assert done.returncode == 0 and done.stdout == done.stderr == ""
