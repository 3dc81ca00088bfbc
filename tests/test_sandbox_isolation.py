"""One task family cannot reach another: interpreter state, files, signals, memory, new programs.

Each batch is served by a process of its own, forked from a clean zygote and
killed when the batch ends; the scratch folders are wiped after every
request. Each test lets a hostile family act, then checks what a sound family
sees and scores.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from acdc_engine.plugins.sandbox import sandbox_plugin as sandbox
from acdc_engine.tasks import TaskCodeError
from test_sandbox_adversarial import BWRAP, GOOD, ISOLATIONS, MEMORY_MB, TIMEOUT_S, needs_bwrap


def family(body: str, imports: str = "import builtins, json, os, signal, sys") -> str:
    """A family whose ``score(t, submission)`` runs ``body``."""
    return (f"{imports}\nclass TaskFamily:\n    @staticmethod\n    def score(t, submission):\n"
            + textwrap.indent(textwrap.dedent(body), " " * 8))


def run(source: str, isolation: str, t=None, submission: str = "5") -> float | None:
    (value,) = sandbox.run_task_code(source, [{"op": "score", "t": t or {}, "submission": submission}],
                                     timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB, isolation=isolation)
    return value


def sound_scores(isolation: str) -> tuple:
    return run(GOOD, isolation, submission="5"), run(GOOD, isolation, submission="4")


PATCHES = {
    "__main__": "import __main__\n__main__._check_score = lambda v: 1.0 if v == 0.0 else 0.0",
    "builtins": "builtins.float = lambda v=0: 1.0 - (v == 1.0)\nbuiltins.isinstance = lambda *a: True",
    "module state": "json.dumps = lambda *a, **k: '{\"id\": 0, \"ok\": true, \"results\": [1.0]}'\n"
                    "json.loads = lambda *a, **k: {'id': 0, 'op': 'score', 't': {}, 'submission': '5'}",
    "sys": "sys.modules['json'] = None\nsys.setrecursionlimit(20)",
}


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("patch", list(PATCHES))
def test_a_family_that_patches_the_interpreter_changes_no_other_familys_scores(isolation, patch):
    assert sound_scores(isolation) == (1.0, 0.0)
    try:
        run(family(PATCHES[patch] + "\nreturn 0.5"), isolation)
    except TaskCodeError:
        pass  # it may break its own reply; it must not break anyone else's
    assert sound_scores(isolation) == (1.0, 0.0)


LEAVE_FILES = """
written = []
for folder in t['folders']:
    try:
        open(os.path.join(folder, 'left-behind'), 'w').write('secret')
        written.append(folder)
    except OSError:
        pass
return len(written) / 10
"""
LOOK_FOR_FILES = """
seen = [os.path.join(folder, name) for folder in t['folders'] for name in (os.listdir(folder)
        if os.path.isdir(folder) else [])]
if seen:
    raise RuntimeError('sees ' + ', '.join(seen))
return 1.0
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_files_one_family_leaves_are_gone_before_the_next_request(isolation):
    folders = ["/tmp", "/dev/shm", "."] if isolation == "bubblewrap" else ["."]
    assert run(family(LEAVE_FILES), isolation, t={"folders": folders}) == len(folders) / 10
    assert run(family(LOOK_FOR_FILES), isolation, t={"folders": folders}) == 1.0
    # nor does the family itself find them at its next request
    assert run(family(LOOK_FOR_FILES + "\n# same family, other source"), isolation, t={"folders": folders}) == 1.0


@needs_bwrap
def test_a_family_that_fills_dev_shm_is_stopped_and_the_host_gets_the_memory_back():
    def shmem_kb() -> int:
        line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("Shmem:"))
        return int(line.split()[1])

    before = shmem_kb()
    fill = """
    chunk, written = b'x' * (1 << 20), 0
    with open('/dev/shm/fill', 'wb') as f:
        while written < 2 * 2**30:
            f.write(chunk)
            f.flush()
            written += len(chunk)
    return float(written)
    """
    with pytest.raises(TaskCodeError, match="No space left on device"):
        run(family(fill), "bubblewrap")
    assert shmem_kb() - before < 32 * 1024  # the 8 MiB cap, wiped; not the 2 GiB asked for
    assert sound_scores("bubblewrap") == (1.0, 0.0)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_new_programs_cannot_be_started(isolation):
    for body in ("os.execv('/bin/true', ['true'])", "os.execve(sys.executable, [sys.executable, '-c', '1'], {})",
                 "import subprocess; subprocess.run(['true'])", "os.posix_spawn('/bin/true', ['true'], {})"):
        with pytest.raises(TaskCodeError, match="PermissionError"):
            run(family(body), isolation)
    assert sound_scores(isolation) == (1.0, 0.0)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_family_cannot_signal_or_read_the_zygote(isolation):
    """The only other process a family could reach in its worker is the zygote that forked it."""
    for body in ("os.kill(os.getppid(), signal.SIGKILL)", "os.kill(os.getppid(), signal.SIGSTOP)",
                 "open(f'/proc/{os.getppid()}/mem', 'rb').read(1)"):
        with pytest.raises(TaskCodeError, match="PermissionError"):
            run(family(body), isolation)
    assert sound_scores(isolation) == (1.0, 0.0)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_every_batch_runs_in_a_process_of_its_own(isolation):
    """No family process is kept between batches: a global set in one batch is gone at the next."""
    body = "import builtins\nseen = getattr(builtins, 'acdc_seen', 0)\nbuiltins.acdc_seen = 1\nreturn seen"
    assert [run(family(body), isolation) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_the_isolation_tests_ran_where_bubblewrap_runs():
    """Documents which half ran: bubblewrap's cases are skipped, with the reason, where it cannot."""
    assert BWRAP is None or isinstance(BWRAP, str)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_many_families_in_turn_all_score_right(isolation):
    sources = [GOOD.replace("What is 2 + 3?", f"What is 2 + 3? ({i})") for i in range(40)]
    call = [{"op": "score", "t": {}, "submission": "5"}]
    for _ in range(2):
        for source in sources:
            assert sandbox.run_task_code(source, call, timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB,
                                         isolation=isolation) == [1.0]
