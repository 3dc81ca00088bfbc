"""Task code's judge(): relayed from the sandbox to the acdc_judge hook, within a budget."""

from __future__ import annotations

import pytest

from acdc_engine.config import SandboxConfig, load_config
from acdc_engine.hookspecs import hookimpl
from acdc_engine.plugin_manager import build_plugin_manager
from acdc_engine.plugins.sandbox import judge_overlap
from acdc_engine.plugins.sandbox.sandbox_plugin import run_task_code
from acdc_engine.tasks import TaskCodeError, TaskSpec

FAMILY = '''
class TaskFamily:
    @staticmethod
    def get_tasks():
        return {"1": {"q": "Capital of France?", "rubric": "Expected answer: Paris"}}
    @staticmethod
    def get_instructions(t):
        return t["q"]
    @staticmethod
    def score(t, submission):
        values = []
        for _ in range(CALLS):
            try:
                values.append(judge(t["q"], submission, t["rubric"]))
            except Exception as exc:  # swallowing the refusal does not help the task
                values.append(type(exc).__name__)
        return values[0] if isinstance(values[0], float) else 0.0
'''


class RecordingJudge:
    def __init__(self):
        self.asked = []

    @hookimpl
    def acdc_judge(self, question, answer, rubric):
        self.asked.append((question, answer, rubric))
        return 0.75 if "Paris" in answer else 0.25


def score(extra_plugins, submission, calls=1, budget=8, plugins=()):
    pm = build_plugin_manager(list(plugins), extra=extra_plugins)
    pm.hook.acdc_configure(config=load_config(), hook=pm.hook)
    try:
        spec = TaskSpec("judged", "d", "c", 1, FAMILY.replace("CALLS", str(calls)), "test")
        limits = SandboxConfig(timeout_s=5.0, memory_mb=256, judge_budget=budget)
        instances = pm.hook.acdc_task_instances(task=spec, limits=limits)
        return pm.hook.acdc_score_submissions(task=spec, instances=instances, submissions=[submission], limits=limits)
    finally:
        pm.hook.acdc_unconfigure()


def test_task_code_gets_the_hooks_answer():
    judge = RecordingJudge()
    assert score([judge], "It is Paris.", calls=3) == [0.75]
    assert judge.asked == [("Capital of France?", "It is Paris.", "Expected answer: Paris")] * 3
    assert score([judge], "Lyon") == [0.25]


def test_exceeding_the_budget_fails_the_batch_even_if_the_task_catches_it():
    judge = RecordingJudge()
    with pytest.raises(TaskCodeError, match=r"^judge\(\) called more than 2 times in one batch \(sandbox.judge_budget\)$"):
        score([judge], "Paris", calls=3, budget=2)
    assert len(judge.asked) == 2


def test_without_a_judge_plugin_the_error_says_so():
    with pytest.raises(TaskCodeError, match=r"^judge\(\) is unavailable: no plugin answers acdc_judge$"):
        score([], "Paris")


def test_the_overlap_judge_plugin_scores_token_f1():
    assert score([], "the Paris", plugins=["judge-overlap"]) == [1.0]
    assert judge_overlap.acdc_judge(question="q", answer="Paris, France", rubric="Expected answer: Paris") == pytest.approx(2 / 3)
    assert judge_overlap.acdc_judge(question="q", answer="Lyon", rubric="Paris") == 0.0
    assert judge_overlap.token_f1("", "") == 1.0


def test_judge_arguments_must_be_text():
    source = FAMILY.replace('judge(t["q"], submission, t["rubric"])', 'judge(t["q"], 3, t["rubric"])')
    (value,) = run_task_code(source.replace("CALLS", "1"), [{"op": "score", "t": {"q": "x", "rubric": "y"},
                                                            "submission": ""}], timeout_s=5, memory_mb=256)
    assert value == 0.0  # TypeError raised inside the task code, caught there, no request sent
