"""The tracking plugins for real: an offline W&B run folder and a SQLite MLflow store, read back after a
whole run, and after a kill -9 mid-run and ``resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from acdc_engine.plugins.tracking.wandb_tracking import ID_FILE as WANDB_ID_FILE
from acdc_engine.plugins.tracking.wandb_tracking import logged_steps, run_files, wandb_records
from acdc_engine.store import RunStore
from conftest import tiny_overrides
from test_resume import committed

GENERATIONS = 3
STATS = ("coverage", "fit_max", "generation")  # a few of the logbook's numbers, logged per generation


def command(tiny_models, tmp_path, run_dir, plugins: str) -> list[str]:
    sets = tiny_overrides(tiny_models, tmp_path, **{"run.generations": GENERATIONS})
    return [sys.executable, "-m", "acdc_engine", "run", "--run-dir", str(run_dir), "--plugins", plugins,
            *[a for s in sets for a in ("--set", s)]]


def environment(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    return {**env, "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"), "WANDB_CONFIG_DIR": str(tmp_path / "wandb-cfg")}


def run_whole(args, env) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def run_killed_then_resumed(args, run_dir, env) -> int:
    """Starts the run, kill -9s it once generation 1 is committed, resumes it; the last committed generation
    at the kill."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 240
    while committed(run_dir / "run.sqlite") < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    last = committed(run_dir / "run.sqlite")
    assert 1 <= last < GENERATIONS, "the kill should land inside the run"
    resumed = subprocess.run([sys.executable, "-m", "acdc_engine", "resume", str(run_dir)],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return last


def wandb_run(run_dir) -> dict:
    """What the offline W&B folder of a run holds: history rows by step (in file order), config, summary,
    artifacts."""
    run_id = json.loads((run_dir / WANDB_ID_FILE).read_text())["id"]
    out = {"id": run_id, "history": [], "config": {}, "summary": {}, "artifacts": []}
    for path in run_files(run_dir / "wandb", run_id):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                       for i in record.history.item})
            elif kind == "run":  # the config given to wandb.init
                out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "config":
                out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == "summary":
                out["summary"].update({i.key: json.loads(i.value_json) for i in record.summary.update})
            elif kind == "artifact":
                out["artifacts"].append({"name": record.artifact.name,
                                         "files": sorted(e.path for e in record.artifact.manifest.contents)})
    return out


def mlflow_run(run_dir):
    from mlflow import MlflowClient

    kept = json.loads((run_dir / "mlflow-run.json").read_text())
    client = MlflowClient(tracking_uri=kept["tracking_uri"])
    run = client.get_run(kept["run_id"])
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)] for k in STATS}

    def files(path=None):
        for info in client.list_artifacts(run.info.run_id, path):
            yield from files(info.path) if info.is_dir else [info.path]
    return run, history, sorted(files())


def stats_by_generation(run_dir) -> dict[int, dict]:
    import sqlite3

    db = sqlite3.connect(run_dir / "run.sqlite")
    try:
        return {g: json.loads(s) for g, s in db.execute("SELECT generation, stats FROM generations ORDER BY 1")}
    finally:
        db.close()


def check_wandb(run_dir) -> None:
    tracked, stats = wandb_run(run_dir), stats_by_generation(run_dir)
    assert logged_steps(run_dir / "wandb", tracked["id"]) == list(range(GENERATIONS + 1))  # each generation once
    for row in tracked["history"]:
        g = int(row["generation"])
        assert row["coverage"] == pytest.approx(stats[g]["coverage"]) and row["fit_max"] == pytest.approx(
            stats[g]["fit_max"])
        assert row["archive/_type"] == "table-file" and row["archive/nrows"] >= 1
    assert tracked["config"]["evolution"]["archive_size"] == 3
    assert 0 <= tracked["summary"]["task_force_coverage"] <= 1 and len(tracked["summary"]["task_force"]) == 3
    (results,) = [a for a in tracked["artifacts"] if a["name"].startswith("acdc-results-")]
    assert {"task_force.json", "archive.json", "archive.table.json"} <= set(results["files"])
    assert any(f.startswith("plots/") and f.endswith(".png") for f in results["files"])


def check_mlflow(run_dir) -> None:
    run, history, files = mlflow_run(run_dir)
    stats = stats_by_generation(run_dir)
    assert run.info.status == "FINISHED"
    for key in STATS:
        assert [s for s, _ in history[key]] == list(range(GENERATIONS + 1)), key  # each generation once
    assert [v for _, v in history["coverage"]] == pytest.approx([stats[g]["coverage"] for g in range(GENERATIONS + 1)])
    assert run.data.params["evolution.archive_size"] == "3" and run.data.params["run.generations"] == str(GENERATIONS)
    assert 0 <= run.data.metrics["task_force_coverage"] <= 1 and len(run.data.tags["acdc.task_force"].split()) == 3
    assert [f"archive/generation-{g:04d}.json" for g in range(GENERATIONS + 1)] == [f for f in files if "archive/" in f]
    assert {"config.json", "results/task_force.json", "results/archive.json"} <= set(files)
    assert any(f.startswith("results/plots/") and f.endswith(".png") for f in files)


def test_a_run_tracked_in_wandb_and_mlflow_reads_back(tiny_models, tmp_path):
    run_dir = tmp_path / "run"
    run_whole(command(tiny_models, tmp_path, run_dir, "merge,taskgen,wandb,mlflow"), environment(tmp_path))
    check_wandb(run_dir)
    check_mlflow(run_dir)


def test_kill_9_then_resume_continues_the_same_tracked_runs(tiny_models, tmp_path):
    run_dir = tmp_path / "run"
    env = environment(tmp_path)
    run_killed_then_resumed(command(tiny_models, tmp_path, run_dir, "merge,taskgen,wandb,mlflow"), run_dir, env)
    check_wandb(run_dir)
    check_mlflow(run_dir)
    assert len(run_files(run_dir / "wandb", wandb_run(run_dir)["id"])) == 2  # one file per process, one run id


@pytest.mark.parametrize("plugins, setting, message", [
    ("mlflow", "mlflow.tracking_uri=nosuch://here", "mlflow tracking store nosuch://here:"),
    ("wandb", "wandb.mode=sometimes", "wandb.mode"),
])
def test_bad_tracking_settings_are_one_line(tiny_models, tmp_path, plugins, setting, message):
    args = command(tiny_models, tmp_path, tmp_path / "run", f"merge,taskgen,{plugins}") + ["--set", setting]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=environment(tmp_path))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 3 and len(errors) == 1 and message in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr


def test_resume_logs_the_committed_generations_the_tracker_lacks(tiny_models, tmp_path):
    from acdc_engine.api import RunStarted
    from acdc_engine.config import load_config
    from acdc_engine.plugins.tracking.tracker import Tracker, TrackingPlugin

    run_dir = tmp_path / "run"
    run_whole(command(tiny_models, tmp_path, run_dir, "merge,taskgen"), environment(tmp_path))
    stats = stats_by_generation(run_dir)

    class Holding(Tracker):  # a tracked run that received generations 0 and 2 before a kill
        logged: list[tuple[int, float, int]] = []

        def start(self, run_dir, config):
            return {0, 2}

        def log_generation(self, generation, metrics, archive):
            self.logged.append((generation, metrics["coverage"], len(archive)))

    plugin = TrackingPlugin(lambda config: Holding())
    plugin.configure(load_config(None, tiny_overrides(tiny_models, tmp_path)))
    store = RunStore.open(run_dir)
    try:  # as the engine tells a resumed run's committed generations
        committed = [{"generation": s["gen"], "archive": store.generation(s["gen"])["archive"], "stats": s}
                     for s in store.all_stats()]
    finally:
        store.close()
    plugin.event(RunStarted(run_dir=str(run_dir), generations=GENERATIONS, start_generation=GENERATIONS,
                            committed=committed))
    assert [(g, c) for g, c, _ in Holding.logged] == [(g, stats[g]["coverage"]) for g in (1, 3)]
    assert all(n >= 1 for _, _, n in Holding.logged) and plugin.logged == {0, 1, 2, 3}


def test_a_damaged_run_id_file_is_one_line_naming_it(tmp_path):
    from acdc_engine.api import AcdcError
    from acdc_engine.plugins.tracking.tracker import load_json, save_json

    path = tmp_path / WANDB_ID_FILE
    assert load_json(path) is None
    save_json(path, {"id": "abcd1234"})
    assert load_json(path) == {"id": "abcd1234"} and not list(tmp_path.glob("*.partial"))
    path.write_bytes(b'{"id": "abc')  # torn by a full disk or a crash outside save_json
    with pytest.raises(AcdcError, match="wandb-run.json cannot be read .*delete it to start a new tracked run") as err:
        load_json(path)
    assert "\n" not in str(err.value)


def test_the_results_archive_is_standard_json_with_the_fittest_members_infinite_score_as_null(tmp_path):
    from acdc_engine.api import ArchiveRow, RunFinished
    from acdc_engine.plugins.tracking.tracker import write_results

    rows = [ArchiveRow(id="m0004", parents=["m0001", "m0002"], fitness=0.5, solved=3, score=float("inf"),
                       capabilities={"code": 1.0}),
            ArchiveRow(id="m0002", parents=["seed:b"], fitness=0.25, solved=1, score=0.75, capabilities={})]
    finished = RunFinished(run_dir=str(tmp_path), task_force=["m0004"], coverage=0.5, seed_coverage=0.25,
                           seed_force=["m0002"], n_tasks=4)
    files = write_results(tmp_path / "out", finished, rows)
    kept = json.loads(files[1].read_text(), parse_constant=lambda c: pytest.fail(f"not standard JSON: {c}"))
    assert [r["score"] for r in kept] == [None, 0.75] and kept[0]["capabilities"] == {"code": 1.0}
