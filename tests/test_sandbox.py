"""The sandbox runs task code out of process, within time and memory limits."""

import pytest

from acdc_engine.config import SandboxConfig
from acdc_engine.plugins.sandbox.sandbox_plugin import Sandbox, run_task_code

acdc_score_submissions, acdc_task_instances = Sandbox().acdc_score_submissions, Sandbox().acdc_task_instances
from acdc_engine.tasks import TaskCodeError, TaskSpec

GOOD = '''
class TaskFamily:
    @staticmethod
    def get_tasks():
        return {"1": {"a": 2, "b": 3}, "2": {"a": 5, "b": 7}}
    @staticmethod
    def get_instructions(t):
        return f"What is {t['a']} + {t['b']}? Answer: <n>"
    @staticmethod
    def score(t, submission):
        print("noise on stdout does not break the protocol")
        return float(submission.strip() == str(t["a"] + t["b"]))
'''
LIMITS = SandboxConfig(timeout_s=3.0, memory_mb=256)


def spec(source):
    return TaskSpec("t", "d", "c", 1, source, "test")


def test_instances_and_scores_come_from_the_family_code():
    instances = acdc_task_instances(spec(GOOD), LIMITS)
    assert [i.key for i in instances] == ["1", "2"]
    assert instances[1].instruction == "What is 5 + 7? Answer: <n>"
    assert acdc_score_submissions(spec(GOOD), instances, ["5", "11"], LIMITS) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("raise KeyError('x')", "score() raised KeyError: 'x'"),
        ("while True: pass", "timed out after 3 s"),
        ("return [0] * (1 << 40)", "score() raised MemoryError"),
        ("return 'high'", "score() raised TypeError: score() returned str, not a number or None"),
        ("import os; os._exit(3)", "no valid reply (exit status 3)"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL"),
    ],
)
def test_misbehaving_score_gives_a_one_line_reason(body, reason):
    source = GOOD.replace('print("noise on stdout does not break the protocol")', body)
    with pytest.raises(TaskCodeError) as err:
        run_task_code(source, [{"op": "score", "t": {"a": 1, "b": 1}, "submission": "2"}],
                      timeout_s=LIMITS.timeout_s, memory_mb=LIMITS.memory_mb)
    assert str(err.value) == reason


def test_malformed_source_is_reported():
    with pytest.raises(TaskCodeError, match="loading the source raised SyntaxError"):
        acdc_task_instances(spec("class TaskFamily(:\n"), LIMITS)
    with pytest.raises(TaskCodeError, match="defines no class TaskFamily"):
        acdc_task_instances(spec("x = 1\n"), LIMITS)
    with pytest.raises(TaskCodeError, match="get_tasks\\(\\) must return a non-empty dict"):
        acdc_task_instances(spec(GOOD.replace('return {"1"', 'return [] or {}\n        {"1"')), LIMITS)


def test_task_code_cannot_see_the_engine_environment(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    source = GOOD.replace('print("noise on stdout does not break the protocol")',
                          'import os; return float("SECRET_TOKEN" in os.environ)')
    (result,) = run_task_code(source, [{"op": "score", "t": {"a": 1, "b": 1}, "submission": ""}],
                              timeout_s=3, memory_mb=256)
    assert result == 0.0
