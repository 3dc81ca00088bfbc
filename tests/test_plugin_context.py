"""Every entry point works inside one configured plugin context; misspelt hooks are refused."""

from __future__ import annotations

import pytest

from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl
from acdc_engine.plugin_manager import PluginContext, build_plugin_manager
from acdc_engine.tasks import TaskSpec

JUDGED = '''
class TaskFamily:
    @staticmethod
    def get_tasks():
        return {"1": {"q": "Name a colour."}}
    @staticmethod
    def get_instructions(t):
        return t["q"]
    @staticmethod
    def score(t, submission):
        return judge(t["q"], submission, "any colour is right")
'''


class FixedJudge:
    @hookimpl
    def acdc_judge(self, question, answer, rubric):
        return 0.75


class Misspelt:
    @hookimpl
    def acdc_generate_task(self, request):  # the hook is acdc_generate_tasks
        return None


def test_a_misspelt_hook_implementation_is_refused_in_one_line():
    with pytest.raises(AcdcError, match="acdc_generate_task") as err:
        build_plugin_manager([], extra=[Misspelt()])
    assert "\n" not in str(err.value)


def test_inside_the_context_task_code_reaches_the_judge_and_after_it_does_not():
    config = load_config(None)
    spec = TaskSpec("judged", "a judged family", "knowledge", 1, JUDGED, "test")
    with PluginContext(config, extra=[FixedJudge()]) as plugins:
        instances = plugins.hook.acdc_task_instances(task=spec, limits=config.sandbox)
        assert plugins.hook.acdc_score_submissions(task=spec, instances=instances, submissions=["red"],
                                              limits=config.sandbox) == [0.75]
    pm = build_plugin_manager([], extra=[FixedJudge()])  # never configured: no judge relay
    from acdc_engine.tasks import TaskCodeError
    with pytest.raises(TaskCodeError, match="judge"):
        pm.hook.acdc_score_submissions(task=spec, instances=instances, submissions=["red"], limits=config.sandbox)


class Lifecycle:
    def __init__(self):
        self.calls = []

    @hookimpl
    def acdc_configure(self, config, hook):
        self.calls.append("configure")

    @hookimpl
    def acdc_unconfigure(self):
        self.calls.append("unconfigure")


def test_a_context_configures_once_and_unconfigures_once_even_when_closed_twice():
    probe = Lifecycle()
    context = PluginContext(load_config(None), extra=[probe])
    assert probe.calls == []  # built, not yet configured
    with context as plugins:
        assert plugins is context and probe.calls == ["configure"]
        context.open()
    context.close()
    assert probe.calls == ["configure", "unconfigure"]


def test_a_run_in_process_leaves_its_context_to_whoever_opened_it(tiny_config, tmp_path):
    from acdc_engine.run.loop import Coevolution
    from acdc_engine.store import RunStore

    probe = Lifecycle()
    config = tiny_config(**{"run.generations": 0})
    store = RunStore.create(tmp_path / "run", config.model_dump_json())
    try:
        with PluginContext(config, extra=[probe]) as plugins:
            run = Coevolution(config, store, plugins)
            run.run()
            run.close()
            assert probe.calls == ["configure"]  # the run neither configures nor unconfigures
    finally:
        store.close()
    assert probe.calls == ["configure", "unconfigure"]


class Counting:
    """A class plugin, as an entry point may name one: state on the instance."""

    @hookimpl
    def acdc_configure(self, config, hook):
        self.seed = config.run.seed


def test_an_entry_point_naming_a_class_gets_a_fresh_instance_in_each_context(monkeypatch):
    import acdc_engine.plugin_manager as manager

    class EntryPoint:
        name = "counting"

        def load(self):
            return Counting

    monkeypatch.setattr(manager, "_entry_points", lambda: {"counting": EntryPoint()})
    with PluginContext(load_config(None, ["run.seed=1"], environ={})) as one, \
            PluginContext(load_config(None, ["run.seed=2"], environ={})) as two:
        mine, theirs = (context.manager.get_plugin("counting") for context in (one, two))
        assert isinstance(mine, Counting) and isinstance(theirs, Counting) and mine is not theirs
        assert (mine.seed, theirs.seed) == (1, 2)


class HalfJudge:
    @hookimpl
    def acdc_judge(self, question, answer, rubric):
        return 0.5


def test_two_open_contexts_each_reach_only_their_own_judge():
    """The sandbox's judge relay is its context's: task code scored in one context never reaches the judge
    of another open in the same process, whichever opened last."""
    config = load_config(None)
    spec = TaskSpec("judged", "a judged family", "knowledge", 1, JUDGED, "test")
    with PluginContext(config, extra=[FixedJudge()]) as first, PluginContext(config, extra=[HalfJudge()]) as second:
        instances = first.hook.acdc_task_instances(task=spec, limits=config.sandbox)
        for plugins, grade in ((first, 0.75), (second, 0.5), (first, 0.75)):
            assert plugins.hook.acdc_score_submissions(task=spec, instances=instances, submissions=["red"],
                                                       limits=config.sandbox) == [grade]
