"""Kept weight files: one file per content digest, a disk budget with LRU eviction (never the
seeds'), and evicted models rebuilt bitwise from their ancestry when needed."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from acdc_engine.ui.cli import main
from acdc_engine.digest import file_digest
from acdc_engine.errors import AcdcError
from acdc_engine.evaluation.systems import Evaluation
from acdc_engine.store import Commit, RunStore
from acdc_engine.run.weight_cache import WeightCache
from conftest import run_in_process
from test_loop_tiny import EventLog
from test_speed_cache import CrashAt

MIB = 2**20


def kept_files(run_dir) -> dict[str, str]:
    """Every file under weights/ by name, with the SHA-256 of its bytes."""
    return {p.stem: file_digest(p) for p in (run_dir / "weights").glob("*.safetensors")}


def test_least_recently_used_files_are_evicted_first_and_seeds_never(tmp_path):
    store = RunStore.create(tmp_path / "run", "{}")
    digests = {}
    for i, (name, mib) in enumerate([("seed", 2), ("a", 1), ("b", 1), ("c", 1)]):
        src = tmp_path / f"{name}.bin"
        src.write_bytes(bytes([i]) * (mib * MIB))
        digests[name] = (file_digest(src), src)
    d = {name: digest for name, (digest, _) in digests.items()}
    new_files = {digest: src for digest, src in digests.values()}
    kept = {"m1": d["seed"], "m2": d["a"], "m3": d["b"], "m4": d["c"], "m5": d["a"]}  # m5's weights equal m2's
    cache = WeightCache(store, budget_mb=2, rebuild=None, emit=lambda *a, **k: None)  # members' files only
    for name in ("seed", "a", "b", "c", "a"):
        cache.touch(d[name])

    rows, evicted, _ = cache.settle(kept, {d["seed"]}, new_files)
    assert evicted == ["m3"]  # b is the least recently used; a was used again after c
    store.commit(Commit(generation=0, new_files=new_files, weight_files=rows))
    assert kept_files(tmp_path / "run") == {d[n]: d[n] for n in ("seed", "a", "c")}  # one file for m2 and m5
    assert {r["digest"]: r["seed"] for r in store.weight_files()} == {d["seed"]: 1, d["a"]: 0, d["c"]: 0}

    tight = WeightCache(store, budget_mb=1, rebuild=None, emit=lambda *a, **k: None)
    rows, evicted, _ = tight.settle(kept, {d["seed"]}, {})
    assert evicted == ["m4"] and [r["digest"] for r in rows] == sorted([d["seed"], d["a"]])
    store.commit(Commit(generation=1, weight_files=rows))
    assert kept_files(tmp_path / "run") == {d[n]: d[n] for n in ("seed", "a")}  # the seed (2 MiB) is not counted
    nothing = WeightCache(store, budget_mb=0, rebuild=None, emit=lambda *a, **k: None)  # 0: unlimited
    assert nothing.settle(kept, {d["seed"]}, {})[1] == []
    store.close()


def test_evicted_children_are_rebuilt_bitwise_across_a_resume_and_by_export(tiny_config, tmp_path):
    # below one child file, and strict (store.keep_next_reads off): no child keeps a file, even one read next
    config = tiny_config(**{"store.weights_budget_mb": 1, "store.keep_next_reads": False})
    run_dir = tmp_path / "run"
    first, second = EventLog(), EventLog()
    with pytest.raises(KeyboardInterrupt):
        run_in_process(config, run_dir, [first, CrashAt(2)])
    run_in_process(config, run_dir, [second], resume=True)

    db = sqlite3.connect(run_dir / "run.sqlite")
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM task_force").fetchone()[0] == 1
    seeds = {r[0] for r in db.execute("SELECT digest FROM models WHERE parents = '[]'")}
    assert {r[0]: r[1] for r in db.execute("SELECT digest, seed FROM weight_files")} == dict.fromkeys(seeds, 1)
    assert kept_files(run_dir) == {d: d for d in seeds}  # the seeds' files, named by their bytes' digest
    evicted = [m for k, e in first.events + second.events if k == "weights_evicted" for m in e["model_ids"]]
    rebuilt = [e["model_id"] for k, e in second.events if k == "weights_rebuilt"]
    assert evicted and rebuilt  # the resumed run rebuilt evicted members (each checked against its digest)
    stats = [json.loads(r[0]) for r in db.execute("SELECT stats FROM generations")]
    seeds_mb = round(sum((run_dir / "weights" / f"{d}.safetensors").stat().st_size for d in seeds) / MIB, 1)
    assert sum(s["weights_evicted"] for s in stats) > 0 and all(s["weights_mb"] == seeds_mb for s in stats)

    digests = dict(db.execute("SELECT id, digest FROM models"))
    evaluation = Evaluation(run_dir)  # its task force's weights are rebuilt into a scratch folder
    try:
        files = evaluation.systems[0].weights
        force = json.loads(db.execute("SELECT model_ids FROM task_force").fetchone()[0])
        assert [file_digest(f) for f in files] == [digests[m] for m in force]
    finally:
        evaluation.close()
    rebuilt_files = [f for f in files if f.parent != run_dir / "weights"]  # a seed in the force keeps its file
    assert rebuilt_files and not any(f.exists() for f in rebuilt_files)

    elite, digest, recipe = db.execute("SELECT id, digest, recipe FROM models WHERE status = 'elite' "
                                       "AND parents != '[]' ORDER BY id").fetchone()
    assert not (run_dir / "weights" / f"{digest}.safetensors").exists()
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(run_dir), elite, str(out)])
    assert result.exit_code == 0, result.output
    assert file_digest(out / "model.safetensors") == digest  # bitwise the weights evaluated at its birth

    changed = json.loads(recipe)
    changed["seed"] += 1
    db.execute("UPDATE models SET recipe = ? WHERE id = ?", (json.dumps(changed), elite))
    db.commit()
    result = CliRunner().invoke(main, ["export", str(run_dir), elite, str(tmp_path / "bad")])
    assert result.exit_code == 3
    lines = result.output.splitlines()  # off a terminal: the progress line, then the one-line error
    assert lines == [f"rebuilding {elite} from its ancestry ...", lines[-1]]
    assert lines[-1].startswith(f"error: rebuilt weights of {elite} do not match the recorded ones")
    db.close()


def test_identical_weights_are_stored_once(tiny_config, tiny_models, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(tiny_models["a"], twin)
    config = tiny_config(**{"run.generations": 0, "models.seeds": [str(tiny_models["a"]), str(twin)],
                            "evolution.initial_population": 4, "evolution.mutation": "none",
                            "evolution.minimal_criterion": False})
    run_in_process(config, tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    models = db.execute("SELECT id, parents, status, digest FROM models ORDER BY id").fetchall()
    seeds = {m[3] for m in models if m[1] == "[]"}
    children = {m[3] for m in models if m[1] != "[]"}
    # the twin seeds have the same bytes; a merge of two copies of the base is the base's tensors
    assert len(models) == 4 and len(seeds) == 1 and len(children) == 1
    assert sum(m[2] == "elite" for m in models) == 3
    assert kept_files(tmp_path / "run") == {d: d for d in seeds | children}  # four models, two files
    db.close()


def test_a_run_from_before_content_addressing_is_named(tmp_path):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    db = sqlite3.connect(run_dir / "run.sqlite")
    db.execute("CREATE TABLE models (id TEXT PRIMARY KEY, recipe TEXT NOT NULL, parents TEXT NOT NULL, "
               "generation INTEGER NOT NULL, fitness REAL, status TEXT NOT NULL, reason TEXT, weights TEXT)")
    db.close()
    with pytest.raises(AcdcError, match="written by an older acdc-engine"):
        RunStore.open(run_dir)


def test_readers_leave_a_live_runs_uncommitted_files_alone(tmp_path):
    """status/export/report open the store while a run may be writing: only the writer sweeps."""
    store = RunStore.create(tmp_path / "run", "{}")
    staged = store.staging_dir / "m0001.safetensors"
    staged.write_bytes(b"child in progress")
    RunStore.open(tmp_path / "run").close()
    assert staged.is_file()
    store.close()  # the writer went away (crashed) with its child half written
    RunStore.open(tmp_path / "run", writer=True).close()
    assert not staged.exists()
