"""What the tracking plugins (``wandb``, ``mlflow``) share: events flattened for a tracker, and the driver.

A :class:`Tracker` subclass talks to one tracking library; :class:`TrackingPlugin`
feeds it the run's events: the config when the run starts,
each committed generation's statistics as metrics at step = generation (with
its archive as a table), and at the end the task force, the final archive and
the plots of ``acdc-engine report`` as files; after ``acdc-engine evaluate`` (hook
``acdc_evaluation_results``) its scores as metrics named ``evaluate/...``
(:func:`evaluation_metrics`) and its files (the JSON report, the per-sample
log, lm-eval's results folder) in the same tracked run. On ``resume`` the tracker
reopens the same tracked run (its id is kept in the run folder) and catches
up on committed generations it never received (a kill -9 can land between a
commit and the tracker's write), so every generation is logged once.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from acdc_engine.api import (AcdcError, ArchiveRow, Config, GenerationCommitted, PluginSection, RunFinished, RunStarted,
                             hookimpl)

#: The metric holding the generation itself (the x axis of every chart; its history says which steps exist).
GENERATION_METRIC = "generation"


def require(module: str, plugin: str, extra: str) -> None:
    """One line naming the extra to install when ``module`` is missing."""
    if importlib.util.find_spec(module) is None:
        raise AcdcError(f"plugin {plugin!r} needs the {module} package: pip install 'acdc-engine[{extra}]'")


def flat_params(config: Config) -> dict[str, str | int | float | bool]:
    """The run config as ``section.key`` params; lists and dicts as JSON text."""
    out: dict[str, str | int | float | bool] = {}
    for section, fields in config.model_dump(mode="json").items():
        for key, value in fields.items():
            out[f"{section}.{key}"] = value if isinstance(value, str | int | float | bool) else json.dumps(value)
    return out


def generation_metrics(stats: dict[str, Any]) -> dict[str, float]:
    """The numbers of a generation's statistics record (fitness, Coverage, pool counts, seconds per phase,
    tokens...), under the logbook's names, with ``generation``; ``None`` and non-finite values left out."""
    out = {GENERATION_METRIC: float(stats["gen"])}
    for key, value in stats.items():
        if key != "gen" and isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out


def archive_table(rows: list[ArchiveRow]) -> tuple[list[str], list[list]]:
    """An archive's rows (``GenerationCommitted.archive``) as columns and data: id, parents, fitness, solved,
    score (None where not finite), then one ``cap:NAME`` pass-rate column per capability."""
    capabilities = sorted({c for r in rows for c in r.capabilities})
    columns = ["id", "parents", "fitness", "solved", "score", *(f"cap:{c}" for c in capabilities)]
    data = [[r.id, " ".join(map(str, r.parents)), float(r.fitness), int(r.solved), r.finite()["score"],
             *(r.capabilities.get(c) for c in capabilities)] for r in rows]
    return columns, data


def write_results(folder: Path, event: RunFinished, archive: list[ArchiveRow]) -> list[Path]:
    """The end of a run as files in ``folder``: ``task_force.json``, ``archive.json`` (the last committed
    archive) and the report's plots as ``plots/NN-title.png``; returns them."""
    folder.mkdir(parents=True, exist_ok=True)
    force = {"task_force": event.task_force, "coverage": event.coverage, "n_tasks": event.n_tasks,
             "seed_force": event.seed_force, "seed_coverage": event.seed_coverage}
    files = [folder / "task_force.json", folder / "archive.json"]
    files[0].write_text(json.dumps(force, indent=1))
    files[1].write_text(json.dumps([r.finite() for r in archive], indent=1, allow_nan=False))
    (folder / "plots").mkdir(exist_ok=True)
    for i, (title, png, _note) in enumerate(event.plots(), 1):
        files.append(folder / "plots" / f"{i:02d}-{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}.png")
        files[-1].write_bytes(base64.b64decode(png))
    return files


def key_part(text: str) -> str:
    """One part of a metric name, in the characters every tracker takes (MLflow: letters, digits, ``_-. /``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_") or "_"


def system_key(name: str) -> str:
    """A system of ``evaluate`` as a metric name part: ``task_force``, ``control``, ``seed_DIR``, ``model_DIR``."""
    base = re.sub(r"\s*\(.*\)\s*$", "", name)  # "task force (m1, m2)", "control (3 samples, T=0.7)"
    kind, _, rest = base.partition(" ")
    if kind in ("seed", "model") and rest:
        base = f"{kind} {Path(rest).name or rest}"
    return key_part(base)


def evaluation_metrics(results: dict) -> dict[str, float]:
    """The numbers of ``evaluate``'s report: ``evaluate/BENCHMARK/SYSTEM/{coverage,majority,best_of_n}``,
    ``evaluate/lm-eval/TASK/SYSTEM/...`` for lm-eval tasks, with each member's own lm-eval metrics as
    ``evaluate/lm-eval/TASK/SYSTEM[/MEMBER]/METRIC`` (``acc``, ``acc_stderr``, ``exact_match``...; a filter
    other than ``none`` appended as ``/FILTER``); ``None`` and non-finite values left out."""
    out: dict[str, float] = {}

    def put(key: str, value) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)

    for prefix, report in (("evaluate", results), ("evaluate/lm-eval", results.get("lm_eval") or {})):
        for bench, entry in (report.get("benchmarks") or {}).items():
            for name, scores in entry["systems"].items():
                key = f"{prefix}/{key_part(bench)}/{system_key(name)}"
                for score in ("coverage", "majority", "best_of_n"):
                    put(f"{key}/{score}", scores.get(score))
                members = scores.get("members") or []
                for member in members:
                    who = key if len(members) == 1 else f"{key}/{key_part(member['member'])}"
                    for metric, value in member.get("metrics", {}).items():
                        name_, _, filt = metric.partition(",")
                        put(f"{who}/{key_part(name_)}" + ("" if filt in ("", "none") else f"/{key_part(filt)}"),
                            value)
    return out


def evaluation_table(results: dict) -> tuple[list[str], list[list]]:
    """``evaluate``'s scores as columns and rows: source (``benchmark`` or ``lm-eval``), benchmark, system,
    n, coverage, majority, best-of-N."""
    rows = []
    for source, report in (("benchmark", results), ("lm-eval", results.get("lm_eval") or {})):
        for bench, entry in (report.get("benchmarks") or {}).items():
            for name, s in entry["systems"].items():
                rows.append([source, bench, name, s["n"], s["coverage"], s["majority"], s["best_of_n"]])
    return ["source", "benchmark", "system", "n", "coverage", "majority", "best_of_n"], rows


def evaluation_stamp() -> str:
    """The folder name of one evaluation's files in a tracked run: ``evaluate-YYYYMMDD-HHMMSS`` (UTC)."""
    return datetime.now(timezone.utc).strftime("evaluate-%Y%m%d-%H%M%S")


def save_json(path: Path, data: dict) -> None:
    """Writes ``data`` whole or not at all (a kill leaves the old file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)


def load_json(path: Path) -> dict | None:
    """A file written by :func:`save_json`, or ``None`` if there is none; garbage is one line naming it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AcdcError(f"{path} cannot be read ({exc}); delete it to start a new tracked run") from None


class Tracker:
    """One tracked run in one tracking library; :class:`TrackingPlugin` calls these in order."""

    def start(self, run_dir: Path, config: Config) -> set[int]:
        """Opens (or, with the id kept in ``run_dir``, reopens) the tracked run and logs the params; returns
        the generations (steps) it already holds."""
        raise NotImplementedError

    def log_generation(self, generation: int, metrics: dict[str, float], archive: list[ArchiveRow]) -> None:
        raise NotImplementedError

    def log_results(self, event: RunFinished, archive: list[ArchiveRow], scratch: Path) -> None:
        """The task force, final archive and plots (:func:`write_results` into ``scratch`` or elsewhere)."""
        raise NotImplementedError

    def close(self, finished: bool) -> None:
        """Ends the tracked run: finished, or stopped before its task force (to be resumed)."""
        raise NotImplementedError

    def log_evaluation(self, run_dir: Path, config: Config, metrics: dict[str, float], results: dict,
                       files: list[Path]) -> None:
        """``acdc-engine evaluate``'s ``metrics`` (:func:`evaluation_metrics`), report and files, in the tracked
        run of ``run_dir`` (reopened by its kept id; a new one if there is none), whose status it leaves."""
        raise NotImplementedError


class TrackingPlugin:
    """Feeds a run's events to a :class:`Tracker` made by ``make(config)`` (registered as a plugin module's
    ``acdc_configure`` / ``acdc_event`` / ``acdc_unconfigure``)."""

    def __init__(self, make) -> None:
        self.make = make
        self.config: Config | None = None
        self.tracker: Tracker | None = None
        self.logged: set[int] = set()
        self.archive: list[ArchiveRow] = []
        self.finished = False

    def configure(self, config: Config) -> None:
        self.config, self.tracker, self.logged, self.archive, self.finished = config, None, set(), [], False

    def event(self, event) -> None:
        match event:
            case RunStarted():
                self.tracker = self.make(self.config)
                run_dir = Path(event.run_dir)
                self.logged = self.tracker.start(run_dir, self.config)
                for committed in event.committed:
                    self.archive = committed["archive"]
                    if committed["generation"] not in self.logged:
                        self.log(committed["generation"], committed["stats"], committed["archive"])
            case GenerationCommitted() if self.tracker is not None:
                self.archive = event.archive
                if event.generation not in self.logged:
                    self.log(event.generation, event.stats, event.archive)
            case RunFinished() if self.tracker is not None:
                with tempfile.TemporaryDirectory(prefix="acdc-tracking-") as scratch:
                    self.tracker.log_results(event, self.archive, Path(scratch))
                self.finished = True

    def log(self, generation: int, stats: dict, archive: list[ArchiveRow]) -> None:
        self.tracker.log_generation(generation, generation_metrics(stats), archive)
        self.logged.add(generation)

    def evaluation(self, run_dir: Path, results: dict, files: list[Path]) -> None:
        """``acdc-engine evaluate``'s results (hook ``acdc_evaluation_results``) to a tracker of its own."""
        self.make(self.config).log_evaluation(Path(run_dir), self.config, evaluation_metrics(results), results,
                                              [Path(f) for f in files])

    def unconfigure(self) -> None:
        tracker, self.tracker = self.tracker, None
        if tracker is not None:
            tracker.close(self.finished)


class TrackingHooks:
    """The hooks of a tracking plugin, one instance per plugin context: ``acdc_config_sections``
    (``section``, named ``name``, also the plugin's and its extra's name), ``acdc_configure`` (one line if
    ``module`` is not installed), ``acdc_event``, ``acdc_unconfigure`` and ``acdc_evaluation_results``,
    feeding a :class:`Tracker` made by ``tracker(section values)``. A subclass sets the four."""

    name: str
    section: type[PluginSection]
    tracker: type[Tracker]
    module: str

    def __init__(self) -> None:
        self.plugin = TrackingPlugin(lambda config: self.tracker(config.section(self.name)))

    @hookimpl
    def acdc_config_sections(self):
        return {self.name: self.section}

    @hookimpl
    def acdc_configure(self, config):
        require(self.module, self.name, self.name)
        self.plugin.configure(config)

    @hookimpl
    def acdc_event(self, event):
        self.plugin.event(event)

    @hookimpl
    def acdc_unconfigure(self):
        self.plugin.unconfigure()

    @hookimpl
    def acdc_evaluation_results(self, run_dir, results, files):
        self.plugin.evaluation(run_dir, results, files)
