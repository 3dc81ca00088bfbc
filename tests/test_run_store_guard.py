"""The run store refuses what is not its own, has one writer at a time and reads on a read-only mount."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import os
import subprocess
import sys
import typing

import pytest
from pydantic import BaseModel

from acdc_engine.config import config_model, load_config, validate
from acdc_engine.errors import AcdcError
from acdc_engine.plugins.sandbox.sandbox_jail import bubblewrap_problem
from acdc_engine.store import SCHEMA_VERSION, RunStore


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acdc_engine", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def one_line_error(done: subprocess.CompletedProcess, *needles: str, code: int = 3) -> str:
    """The command failed with exit ``code`` (3: bad input) and one line on stderr, no traceback, containing
    every needle."""
    text = (done.stdout + done.stderr).strip()
    assert done.returncode == code and "Traceback" not in text and len(text.splitlines()) == 1, text
    assert text == done.stderr.strip(), text
    assert all(n in text for n in needles), text
    return text


def new_run(path):
    RunStore.create(path, config_model()().model_dump_json()).close()
    return path


def test_a_second_writer_is_refused_with_the_holders_pid_and_the_lock_dies_with_it(tmp_path):
    run = new_run(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", f"import time; from acdc_engine.store import RunStore\n"
                               f"s = RunStore.open({str(run)!r}, writer=True)\nprint('held', flush=True)\n"
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        one_line_error(engine("resume", run), "in use by process", str(holder.pid))
        assert engine("status", run).returncode == 0  # readers are welcome meanwhile
    finally:
        holder.kill()
        holder.wait()
    RunStore.open(run, writer=True).close()  # the kernel released the lock of the killed process


def test_files_that_are_not_run_stores_are_refused_and_left_as_they_were(tmp_path):
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "run.sqlite").write_bytes(b"\x00not sqlite at all" * 500)
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "run.sqlite") as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    newer = new_run(tmp_path / "newer")
    with sqlite3.connect(newer / "run.sqlite") as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    for command in ("status", "report", "resume"):
        one_line_error(engine(command, garbage), "is not an acdc-engine run store")
        one_line_error(engine(command, other), "is not an acdc-engine run store", "no table meta")
        one_line_error(engine(command, newer), "newer acdc-engine")
    with sqlite3.connect(other / "run.sqlite") as db:  # nothing was created in a stranger's file
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["notes"]


@pytest.mark.skipif(bubblewrap_problem() is not None, reason=f"needs bubblewrap: {bubblewrap_problem()}")
def test_read_only_commands_work_on_a_read_only_mount(tiny_config, tmp_path):
    from test_loop_tiny import run_once

    run = tmp_path / "run"
    run_once(tiny_config(**{"run.generations": 1}), run, [])
    before = sorted(p.name for p in run.rglob("*"))
    mount = ["bwrap", "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--ro-bind", str(run), str(run)]
    for args in (["status", run], ["report", run, "--out", tmp_path / "report.html"], ["lineage", run, "m0005"]):
        done = subprocess.run([*mount, sys.executable, "-m", "acdc_engine", *map(str, args)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in run.rglob("*")) == before


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_numbers_are_refused_naming_the_field(value):
    with pytest.raises(AcdcError, match="config field merge.mutation_std: .*finite"):
        load_config(None, [f"merge.mutation_std={value}"])


def test_a_directory_as_config_file_is_one_line(tmp_path):
    one_line_error(engine("run", "--config", tmp_path, "--run-dir", tmp_path / "run"), "is a directory")
    assert not (tmp_path / "run").exists()


def extreme(field) -> typing.Any:
    """The largest valid value of a numeric field (its upper bound, else a huge one), else its default."""
    kind = field.annotation
    upper = [getattr(m, a) for m in field.metadata for a in ("le", "lt") if getattr(m, a, None) is not None]
    if kind is float:
        return math.nextafter(upper[0], -math.inf) if upper else 1e300
    if kind is int:
        return upper[0] if upper else 2**62
    return field.get_default(call_default_factory=True)


def test_every_field_at_an_extreme_valid_value_is_stored_and_read_back(tmp_path):
    data = {}
    for section, f in config_model().model_fields.items():  # the engine's sections and the plugins' own
        model: type[BaseModel] = f.annotation
        data[section] = {key: extreme(sub) for key, sub in model.model_fields.items()}
    config = validate(data)
    run = tmp_path / "run"
    RunStore.create(run, config.model_dump_json()).close()
    store = RunStore.open(run)
    assert store.config() == config
    store.close()
    assert engine("status", run).returncode == 0
    assert json.loads(config.model_dump_json())["merge"]["mutation_std"] == 1e300


def test_a_stored_config_that_no_longer_validates_is_one_line(tmp_path):
    run = new_run(tmp_path / "run")
    with sqlite3.connect(run / "run.sqlite") as db:
        stored = json.loads(db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
        stored["merge"]["mutation_std"] = None
        db.execute("UPDATE meta SET value=? WHERE key='config'", (json.dumps(stored),))
    one_line_error(engine("status", run), "stored config field merge.mutation_std")


def test_a_merge_parameter_under_its_old_section_is_refused_with_its_new_name(tmp_path):
    with pytest.raises(AcdcError, match=r"evolution.keep_rank has moved .*set merge.keep_rank instead$"):
        load_config(None, ["evolution.keep_rank=64"])
    old = tmp_path / "old.toml"
    old.write_text("[evolution]\nmutation_std = 0.1\n")
    one_line_error(engine("run", "--config", old, "--run-dir", tmp_path / "run"), "set merge.mutation_std instead")
    assert not (tmp_path / "run").exists()


def test_a_run_stored_before_the_merge_parameters_moved_still_reads(tmp_path):
    run = new_run(tmp_path / "run")
    with sqlite3.connect(run / "run.sqlite") as db:
        stored = json.loads(db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
        stored["evolution"] |= {"mutation_std": 0.125, "keep_rank": 32}  # the layout of older runs
        del stored["merge"]
        db.execute("UPDATE meta SET value=? WHERE key='config'", (json.dumps(stored),))
    store = RunStore.open(run)
    merge = store.config().merge
    store.close()
    assert (merge.mutation_std, merge.keep_rank, merge.crossover_std) == (0.125, 32, 0.01)
    assert engine("status", run).returncode == 0


def test_an_uncreatable_run_dir_is_one_line_before_any_forging(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = tmp_path / "cache"  # empty: the default seeds would forge their experts into it first
    one_line_error(engine("run", "--run-dir", blocker / "run", "--set", f"models.cache_dir='{cache}'"),
                   "cannot create the run directory")
    assert not cache.exists()
    shutil.rmtree(tmp_path)


def test_a_run_that_fails_at_its_start_leaves_no_folder(tmp_path):
    run = tmp_path / "run"
    one_line_error(engine("run", "--run-dir", run, "--set", "models.forge_missing=false", "--set",
                          f"models.seeds=['{tmp_path / 'missing-model'}']"), "does not exist")
    assert not run.exists()


def test_a_first_run_whose_forging_fails_leaves_no_folder(tmp_path):
    run, missing = tmp_path / "run", tmp_path / "no-model"
    done = engine("run", "--run-dir", run, "--set", f"models.cache_dir='{tmp_path / 'cache'}'",
                  "--set", f"models.seeds=['forged:{missing}']", "--set", f"models.base='{missing}'")
    assert done.returncode == 3 and "Traceback" not in done.stdout + done.stderr
    assert f"error: seed model path {missing} does not exist" in done.stderr
    assert not run.exists()
    run.mkdir()
    (run / "notes.txt").write_text("mine")  # a folder that existed keeps what it held, and nothing more
    again = engine("run", "--run-dir", run, "--set", f"models.cache_dir='{tmp_path / 'cache'}'",
                   "--set", f"models.seeds=['forged:{missing}']", "--set", f"models.base='{missing}'")
    assert again.returncode == 3 and [p.name for p in run.iterdir()] == ["notes.txt"]


def test_a_seed_folder_without_tokenizer_files_is_named(tiny_models, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_models["a"] / name, bare / name)
    one_line_error(engine("run", "--run-dir", tmp_path / "run", "--set", "models.forge_missing=false",
                          "--set", f"models.seeds=['{bare}']", "--set", f"models.base='{bare}'"),
                   f"seed model {bare} has no tokenizer files")


def test_output_paths_that_cannot_be_written_are_one_line(tiny_config, tmp_path):
    from test_loop_tiny import run_once

    run = tmp_path / "run"
    run_once(tiny_config(**{"run.generations": 1}), run, [])
    (tmp_path / "a-file").write_text("x")
    one_line_error(engine("export", run, "m0001", tmp_path / "a-file"), "is a file")
    one_line_error(engine("export", run, "m0001", tmp_path / "a-file" / "out"), "a-file")
    one_line_error(engine("report", run, "--out", tmp_path / "no" / "report.html"), "does not exist")
    stale = tmp_path / "out" / ".acdc-rebuild-999999999-x"  # left by a killed export (no such process)
    stale.mkdir(parents=True)
    (stale / "m0005.safetensors.partial").write_bytes(b"half")
    assert engine("export", run, "m0005", tmp_path / "out").returncode == 0
    assert not list((tmp_path / "out").glob(".acdc-rebuild-*"))


def test_a_write_that_fails_mid_run_is_one_line_with_the_resume_command(tiny_models, tmp_path):
    """The kernel refuses a write (here: files over 4 MiB, so the database works and weight files do not,
    as a full disk would): one line on stderr, exit 1 (a runtime error)."""
    import resource
    import signal

    from conftest import tiny_overrides

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))

    run = tmp_path / "run"
    args = [a for o in tiny_overrides(tiny_models, tmp_path, **{"run.generations": 1}) for a in ("--set", o)]
    done = subprocess.run([sys.executable, "-m", "acdc_engine", "run", "--run-dir", str(run), *args],
                          capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "File too large" in last and f"acdc-engine resume {run}" in last


def test_a_run_records_its_seeds_and_a_resume_on_other_weights_is_refused(tiny_models, tmp_path):
    import safetensors.torch

    from conftest import tiny_overrides

    # copies of the tiny seeds, so that one can change under the run
    seeds = {}
    for name in ("a", "b"):
        seeds[name] = tmp_path / f"seed-{name}"
        shutil.copytree(tiny_models[name], seeds[name])
    overrides = tiny_overrides({**tiny_models, **seeds}, tmp_path, **{"run.generations": 0})
    run = tmp_path / "run"
    done = engine("run", "--run-dir", run, *[a for o in overrides for a in ("--set", o)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seeds: " in done.stdout
    status = engine("status", run)
    assert "seeds: " in status.stdout and str(seeds["a"]) in status.stdout
    weights = seeds["b"] / "model.safetensors"
    tensors = safetensors.torch.load_file(weights)
    first = next(iter(tensors))
    tensors[first] = tensors[first] + 1
    safetensors.torch.save_file(tensors, weights, metadata={"format": "pt"})
    done = engine("resume", run)
    assert done.returncode == 3 and "Traceback" not in done.stdout + done.stderr
    assert f"seed {seeds['b']} now resolves to other weights" in done.stderr.strip().splitlines()[-1]


def test_status_piped_keeps_every_header_within_80_columns_and_json_is_machine_readable(tiny_config, tmp_path):
    from test_loop_tiny import run_once

    run = tmp_path / "run"
    run_once(tiny_config(**{"run.generations": 1}), run, [])
    piped = subprocess.run([sys.executable, "-m", "acdc_engine", "status", str(run)], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "COLUMNS": "80"})  # stdout is a pipe of 80 columns
    assert piped.returncode == 0
    for header in ("fit_max", "coverage", "model_diversity", "rejected_tasks", "elapsed_s", "materialise",
                   "generated"):
        assert header in piped.stdout
    tables = [line for line in piped.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert tables and max(map(len, tables)) <= 80 and "…" not in piped.stdout
    facts = json.loads(engine("status", "--json", run).stdout)
    assert facts["last_generation"] == 1 and len(facts["per_generation"]) == 2
    assert facts["task_force"]["model_ids"] and set(facts["seeds"]) and facts["archive"]
    disk = facts["disk"]  # the folder's size, and how many models are kept as files and as recipes only
    db = sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True)
    models = db.execute("SELECT COUNT(*) FROM models").fetchone()[0]
    files = {p.name for p in (run / "weights").glob("*.safetensors")}
    db.close()
    assert disk["models_as_files"] + disk["models_as_recipes"] == models and disk["models_as_files"] >= len(files)
    assert disk["own_bytes"] >= (run / "run.sqlite").stat().st_size
    assert "folder: " in piped.stdout and "as recipes only" in piped.stdout
