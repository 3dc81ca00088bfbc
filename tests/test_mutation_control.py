"""The mutation-only control of the discovery benchmark, on a real tiny run: mutations of the base that match
the run's children, scored on the run's tasks as the run scores, picked as the task force is picked."""

import importlib.util
import json
from pathlib import Path

from acdc_engine.digest import file_digest
from acdc_engine.evaluation.discovery_measure import base_mutations, task_scores
from acdc_engine.run.executor import MaterialiseJob, Operators, Worker
from acdc_engine.plugin_manager import PluginContext
from acdc_engine.run.task_pool import TaskPool
from acdc_engine.recipe import Recipe
from acdc_engine.store import RunStore
from acdc_engine.tasks import ACCEPTED
from conftest import run_in_process


def benchmark():
    """benchmarks/discovery.py as a module (it is a script, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "discovery.py"
    spec = importlib.util.spec_from_file_location("discovery_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finished_run(tiny_config, tmp_path):
    config = tiny_config()
    run_in_process(config, tmp_path / "run")
    store = RunStore.open(tmp_path / "run")
    models = [dict(r) for r in store.models()]
    base_id = next(m["id"] for m in models if Recipe.from_json(m["recipe"]).seed_spec == config.models.base)
    return config, store, models, base_id


def test_each_child_gets_a_mutation_of_the_base_with_its_own_noise_and_no_crossover(tiny_config, tmp_path):
    config, store, models, base_id = finished_run(tiny_config, tmp_path)
    try:
        recipes = base_mutations(models, base_id)
        children = [m for m in models if not Recipe.from_json(m["recipe"]).is_seed]
        assert sorted(recipes) == sorted(f"mut-{m['id']}" for m in children) and children
        for child in children:
            own, control = Recipe.from_json(child["recipe"]), recipes[f"mut-{child['id']}"]
            assert control.parents == (base_id,) and control.crossover is None
            assert (control.mutation, control.mutation_params, control.seed) == (
                own.mutation, own.mutation_params, own.seed)
        with PluginContext(config) as plugins:
            base_file = store.weights_path(next(m["digest"] for m in models if m["id"] == base_id))
            worker = Worker(config=config, hook=plugins.hook, base_dir=Path(config.models.base),
                            operators=Operators(plugins.hook, config.evolution))
            recipe = next(iter(recipes.values()))
            files = [tmp_path / f"mutant{i}.safetensors" for i in range(2)]
            for out in files:
                worker.materialise(MaterialiseJob(recipe, [base_file], out))
            assert file_digest(files[0]) == file_digest(files[1]) != file_digest(base_file)  # seeded, perturbed
    finally:
        store.close()


def test_the_base_scored_outside_the_run_gets_the_run_s_own_scores(tiny_config, tmp_path):
    config, store, models, base_id = finished_run(tiny_config, tmp_path)
    try:
        pool = TaskPool(emit=lambda *a, **k: None)
        pool.restore(store.tasks(), active=[])
        records = [pool[r["id"]] for r in store.tasks() if r["status"] in ACCEPTED]
        base_row = next(m for m in models if m["id"] == base_id)
        with PluginContext(config) as plugins:
            worker = Worker(config=config, hook=plugins.hook, base_dir=Path(config.models.base),
                            operators=Operators(plugins.hook, config.evolution))
            try:
                scores = task_scores(worker, plugins.hook, config.sandbox, store.weights_path(base_row["digest"]),
                                     records)
            finally:
                worker.close()
        assert sorted(scores) == sorted(r.id for r in records)
        stored = {t: v for (m, t), v in store.instance_scores().items() if m == base_id}
        assert stored and all(scores[t] == v for t, v in stored.items())
    finally:
        store.close()


def test_the_control_picks_among_the_base_and_its_mutations_and_keeps_their_scores(tiny_config, tmp_path, capsys):
    config, store, models, base_id = finished_run(tiny_config, tmp_path)
    bench = benchmark()
    run_dir = tmp_path / "run"
    try:
        base_row = next(m for m in models if m["id"] == base_id)
        tasks = [r["id"] for r in store.tasks() if r["status"] in ACCEPTED]
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        with PluginContext(config) as plugins:
            def picks():
                return bench.mutation_control_picks(
                    run_dir, store, plugins.hook, config, Path(config.models.base),
                    store.weights_path(base_row["digest"]), base_id, tasks, "tasks", config.tasks.pass_threshold,
                    models, scratch)
            first = picks()
            kept_file = tmp_path / "run-mutation-control.json"
            kept = json.loads(kept_file.read_text())
            assert sorted(kept["scores"]) == sorted([base_id, *base_mutations(models, base_id)])
            assert capsys.readouterr().out.count("scored on the run's") == len(kept["scores"])
            again = picks()  # from the kept scores: nothing answered twice
            assert "scored on the run's" not in capsys.readouterr().out
        assert set(first) == set(bench.SIZES)
        for n, (chosen, files) in first.items():
            assert chosen == again[n][0] and 1 <= len(chosen) <= n
            assert set(chosen) <= set(kept["scores"]) and all(f.is_file() for f in files)
    finally:
        store.close()
