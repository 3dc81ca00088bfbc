"""The Ray executor on a real local Ray cluster: same result as a local run, even when an actor dies."""

from __future__ import annotations

import pytest

from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl
from acdc_engine.run.loop import Coevolution
from acdc_engine.plugin_manager import PluginContext, build_plugin_manager
from acdc_engine.store import RunStore

ray = pytest.importorskip("ray")


class KillOneActor:
    """Kills one Ray actor in generation 1's evaluation, one with a job in flight where there is one."""

    def __init__(self):
        self.evo = None
        self.step = None
        self.killed = 0

    @hookimpl
    def acdc_event(self, kind, data):
        if kind == "step":
            self.step = (data["name"], data["generation"])
        if kind == "advance" and self.step == ("evaluate", 1) and not self.killed:
            executor = self.evo.executor
            slot = next((s for s, _, _ in executor.inflight.values()), 0)
            ray.kill(executor.actors[slot])
            self.killed += 1


def run(config, run_dir, *plugins):
    store = RunStore.create(run_dir, config.model_dump_json())
    context = PluginContext(config, extra=list(plugins)).open()
    evo = Coevolution(config, store, context)
    for p in plugins:
        p.evo = evo
    try:
        evo.run()
        return store.scores(), store.generation(config.run.generations)["archive"], evo
    finally:
        evo.close()
        context.close()
        store.close()


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_run_with_a_killed_actor_matches_a_local_run(tiny_config, tmp_path, ray_cluster):
    overrides = {"run.generations": 1, "ray.workers": 2, "ray.cpus_per_worker": 1.0}
    local_scores, local_archive, _ = run(tiny_config(**overrides), tmp_path / "local")
    killer = KillOneActor()
    scores, archive, evo = run(tiny_config(**overrides, **{"run.executor": "ray"}), tmp_path / "ray", killer)
    assert killer.killed == 1 and evo.executor.restarts >= 1  # the dead actor's work was re-queued
    assert scores == local_scores and archive == local_archive


def test_ray_executor_without_ray_says_how_to_install(tiny_config, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "acdc_engine.run.ray_executor", raising=False)
    with pytest.raises(AcdcError, match=r"pip install 'acdc-engine\[ray\]'"):
        Coevolution(tiny_config(**{"run.executor": "ray"}), None, build_plugin_manager(["merge", "taskgen"]))
