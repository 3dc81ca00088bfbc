"""Built-in plugin ``wandb`` (``--plugins ...,wandb``): the run tracked in Weights & Biases (extra ``[wandb]``).

Offline by default (``[wandb] mode``, or ``WANDB_MODE`` under ``mode = "auto"``),
into ``RUN_DIR/wandb/`` (``[wandb] dir``); ``wandb sync RUN_DIR/wandb`` uploads
it later. The W&B run id is kept in ``RUN_DIR/wandb-run.json``: ``resume``
continues the same W&B run (``resume="allow"``), and logs the committed
generations that no ``.wandb`` file of that run holds yet (wandb-core writes
its file every 15 s, so a kill -9 loses what came since), so each step is
there once. ``acdc-engine evaluate`` reopens the same W&B run: its scores go
to the summary (``evaluate/...``), its files to an artifact
``acdc-evaluation-ID``. What is logged: see :mod:`acdc_engine.plugins.tracking.tracker`.
"""

from __future__ import annotations

import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from acdc_engine.api import AcdcError, ArchiveRow, Config, PluginSection, RunFinished
from .tracker import (Tracker, archive_table, evaluation_stamp, evaluation_table, load_json,
                      save_json, TrackingHooks, write_results)

ID_FILE = "wandb-run.json"
_BLOCK, _HEADER, _FILE_HEADER = 32768, 7, struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class WandbSection(PluginSection):
    """Weights & Biases tracking (plugin `wandb`, extra `[wandb]`)."""

    mode: Literal["auto", "offline", "online", "disabled"] = Field(
        "auto", description="'auto': WANDB_MODE if set, else offline; or 'offline', 'online', 'disabled'.")
    project: str = Field("acdc-engine", description="W&B project.")
    entity: str = Field("", description="W&B entity (team or user); empty: your default entity.")
    dir: str = Field("", description="Folder under which wandb writes its `wandb/` folder; empty: the run folder.")
    name: str = Field("", description="Display name of the W&B run; empty: the run folder's name.")
    tags: list[str] = Field(default_factory=list, description="Tags of the W&B run.")


def wandb_records(path: Path) -> Iterator:
    """The records of a ``.wandb`` file (the LevelDB log format wandb-core writes, each record a wandb
    ``Record`` protobuf), up to the first torn or corrupt one (a killed writer's last block)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    if not data.startswith(_FILE_HEADER):
        raise AcdcError(f"{path} is not a .wandb file")
    pos, pending = len(_FILE_HEADER), b""
    while pos + _HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _HEADER:  # a block's tail too short for a header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        if kind == 0 or len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return
        pos += _HEADER + length
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = Record()
            record.ParseFromString(pending)
            yield record


def run_files(wandb_dir: Path, run_id: str) -> list[Path]:
    """The ``.wandb`` files of one run id under a ``wandb/`` folder, oldest first (one per process)."""
    return sorted(p for p in wandb_dir.glob(f"*-{run_id}/run-{run_id}.wandb") if not p.parent.is_symlink())


def logged_steps(wandb_dir: Path, run_id: str) -> list[int]:
    """Every history step those files hold, in file order (a step twice means it was logged twice)."""
    return [r.history.step.num for f in run_files(wandb_dir, run_id) for r in wandb_records(f)
            if r.WhichOneof("record_type") == "history"]


class WandbTracker(Tracker):
    """One W&B run per acdc-engine run folder."""

    def __init__(self, section: WandbSection) -> None:
        self.section, self.run = section, None

    def start(self, run_dir: Path, config: Config) -> set[int]:
        run_id, root = self._init(run_dir, config=config.model_dump(mode="json"))
        return set(logged_steps(root / "wandb", run_id)) | set(range(self.run.step))

    def _init(self, run_dir: Path, **extra) -> tuple[str, Path]:
        """Opens the W&B run of ``run_dir`` (its kept id, or a new one kept there); its id and root folder."""
        import wandb

        kept = load_json(run_dir / ID_FILE)
        run_id = kept["id"] if kept else secrets.token_hex(4)  # a W&B run id: [a-z0-9]{8}
        if not kept:
            save_json(run_dir / ID_FILE, {"id": run_id})  # before init: a kill after it still resumes this id
        root = Path(self.section.dir or run_dir)
        root.mkdir(parents=True, exist_ok=True)
        mode = os.environ.get("WANDB_MODE", "offline") if self.section.mode == "auto" else self.section.mode
        try:
            self.run = wandb.init(
                id=run_id, resume="allow", mode=mode, project=self.section.project,
                entity=self.section.entity or None, dir=str(root), name=self.section.name or run_dir.name,
                tags=self.section.tags or None, settings=wandb.Settings(silent=True, console="off"), **extra)
        except wandb.errors.Error as exc:
            raise AcdcError(f"wandb could not start run {run_id} ({mode}): {exc}".splitlines()[0]) from None
        return run_id, root

    def log_generation(self, generation: int, metrics: dict[str, float], archive: list[ArchiveRow]) -> None:
        import wandb

        columns, data = archive_table(archive)
        self.run.log({**metrics, "archive": wandb.Table(columns=columns, data=data)}, step=generation)

    def log_results(self, event: RunFinished, archive: list[ArchiveRow], scratch: Path) -> None:
        import wandb

        folder = Path(self.run.dir) / "acdc-results"  # the run's own files: uploaded with it
        results = wandb.Artifact(f"acdc-results-{self.run.id}", type="acdc-results",
                                 description="Task force, final archive and report plots of an acdc-engine run.")
        for path in write_results(folder, event, archive):
            results.add_file(str(path), name=str(path.relative_to(folder)), policy="immutable")
        columns, data = archive_table(archive)
        results.add(wandb.Table(columns=columns, data=data), "archive")
        results.add(wandb.Table(columns=["id", "in"], data=[[m, "task force"] for m in event.task_force]
                                + [[m, "seed force"] for m in event.seed_force]), "task_force")
        self.run.log_artifact(results)
        self.run.summary.update({"task_force": event.task_force, "task_force_coverage": event.coverage,
                                 "seed_force": event.seed_force, "seed_force_coverage": event.seed_coverage,
                                 "n_tasks": event.n_tasks})

    def log_evaluation(self, run_dir: Path, config: Config, metrics: dict[str, float], results: dict,
                       files: list[Path]) -> None:
        """The scores in the run's summary (``evaluate/...``), the report as a table, and the files as an
        artifact ``acdc-evaluation-ID`` (type ``acdc-evaluation``), in the W&B run reopened."""
        import wandb

        self._init(run_dir)
        try:
            stamp = evaluation_stamp()
            artifact = wandb.Artifact(f"acdc-evaluation-{self.run.id}", type="acdc-evaluation",
                                      description=f"acdc-engine evaluate ({stamp}): report, per-sample log, "
                                                  "lm-eval results.", metadata={"stamp": stamp})
            for path in files:
                if path.is_dir():
                    artifact.add_dir(str(path), name=path.name, policy="immutable")
                elif path.is_file():
                    artifact.add_file(str(path), name=path.name, policy="immutable")
            columns, data = evaluation_table(results)
            artifact.add(wandb.Table(columns=columns, data=data), "evaluation")
            self.run.log_artifact(artifact)
            self.run.summary.update({**metrics, "evaluate/stamp": stamp})
        finally:
            self.close(True)

    def close(self, finished: bool) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.finish(exit_code=0 if finished else 1)


class WandbPlugin(TrackingHooks):
    """The plugin ``wandb``."""

    name, section, tracker, module = "wandb", WandbSection, WandbTracker, "wandb"
