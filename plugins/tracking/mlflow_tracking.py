"""Built-in plugin ``mlflow`` (``--plugins ...,mlflow``): the run tracked in MLflow (extra ``[mlflow]``).

By default the tracking store is a SQLite file in the run folder
(``RUN_DIR/mlflow.db``, artifacts in ``RUN_DIR/mlflow-artifacts``), so
``mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow.db`` shows it;
``[mlflow] tracking_uri`` (or ``MLFLOW_TRACKING_URI``) points it at any
other store or server. The MLflow run id is kept in ``RUN_DIR/mlflow-run.json``:
``resume`` continues the same MLflow run and logs the committed generations
it does not hold yet (each write is synchronous, so after a kill -9 at most
the generation being logged is missing), so each step is there once.
``acdc-engine evaluate`` logs to the same MLflow run: its scores as metrics
``evaluate/...``, its files under the artifact folder ``evaluation/STAMP/``.
What is logged: see :mod:`acdc_engine.plugins.tracking.tracker`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import Field

from acdc_engine.api import AcdcError, ArchiveRow, Config, PluginSection, RunFinished
from .tracker import (GENERATION_METRIC, Tracker, archive_table, evaluation_stamp,
                      evaluation_table, flat_params, load_json, save_json, TrackingHooks,
                      write_results)

ID_FILE = "mlflow-run.json"
PARAM_LIMIT = 6000  # MLflow refuses longer param values; longer ones are cut and marked


class MlflowSection(PluginSection):
    """MLflow tracking (plugin `mlflow`, extra `[mlflow]`)."""

    tracking_uri: str = Field("", description="Tracking store or server; empty: MLFLOW_TRACKING_URI if set, "
                              "else sqlite:///RUN_DIR/mlflow.db with artifacts in RUN_DIR/mlflow-artifacts.")
    experiment: str = Field("acdc-engine", min_length=1, description="MLflow experiment (created if missing).")
    run_name: str = Field("", description="Display name of the MLflow run; empty: the run folder's name.")


class MlflowTracker(Tracker):
    """One MLflow run per acdc-engine run folder."""

    def __init__(self, section: MlflowSection) -> None:
        self.section, self.client, self.run_id = section, None, None

    def start(self, run_dir: Path, config: Config) -> set[int]:
        from mlflow import MlflowClient
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        for name in ("alembic", "mlflow"):  # migrations and store notices would fight the live view
            logging.getLogger(name).setLevel(logging.WARNING)
        kept = load_json(run_dir / ID_FILE)
        default = f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
        uri = kept["tracking_uri"] if kept else (self.section.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                                                 or default)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            if kept:
                self.run_id = kept["run_id"]
                self.client.update_run(self.run_id, status="RUNNING")
                return {int(m.step) for m in self.client.get_metric_history(self.run_id, GENERATION_METRIC)}
            experiment = self.client.get_experiment_by_name(self.section.experiment)
            if experiment is None:
                where = (run_dir / "mlflow-artifacts").resolve().as_uri() if uri == default else None
                experiment_id = self.client.create_experiment(self.section.experiment, artifact_location=where)
            else:
                experiment_id = experiment.experiment_id
            run = self.client.create_run(experiment_id, run_name=self.section.run_name or run_dir.name,
                                         tags={"acdc.run_dir": str(run_dir.resolve())})
            self.run_id = run.info.run_id
            save_json(run_dir / ID_FILE, {"tracking_uri": uri, "run_id": self.run_id})
            params = [Param(k, v if len(v := str(value)) <= PARAM_LIMIT else v[:PARAM_LIMIT - 3] + "...")
                      for k, value in sorted(flat_params(config).items())]
            for i in range(0, len(params), 100):  # log_batch takes at most 100 params a call
                self.client.log_batch(self.run_id, params=params[i:i + 100])
            self.client.log_dict(self.run_id, config.model_dump(mode="json"), "config.json")
        except MlflowException as exc:
            raise AcdcError(f"mlflow tracking store {uri}: {exc.message.splitlines()[0]}") from None
        return set()

    def log_generation(self, generation: int, metrics: dict[str, float], archive: list[ArchiveRow]) -> None:
        import time

        from mlflow.entities import Metric

        columns, data = archive_table(archive)  # the archive first: the metrics mark the generation as logged
        self.client.log_dict(self.run_id, {"columns": columns, "data": data},
                             f"archive/generation-{generation:04d}.json")
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, generation) for k, v in metrics.items()])

    def log_results(self, event: RunFinished, archive: list[ArchiveRow], scratch: Path) -> None:
        write_results(scratch, event, archive)
        self.client.log_artifacts(self.run_id, str(scratch), "results")
        self.client.set_tag(self.run_id, "acdc.task_force", " ".join(event.task_force))
        self.client.set_tag(self.run_id, "acdc.seed_force", " ".join(event.seed_force))
        self.client.log_metric(self.run_id, "task_force_coverage", event.coverage)
        self.client.log_metric(self.run_id, "seed_force_coverage", event.seed_coverage)

    def log_evaluation(self, run_dir: Path, config: Config, metrics: dict[str, float], results: dict,
                       files: list[Path]) -> None:
        """The scores as metrics (``evaluate/...``, step 0), the report as ``evaluation/STAMP/scores.json``
        (a table) and the files under ``evaluation/STAMP/``, in the MLflow run kept for ``run_dir`` (a new one,
        finished at once, if there is none); its status is left as it was."""
        import time

        from mlflow.entities import Metric
        from mlflow.exceptions import MlflowException

        kept = load_json(run_dir / ID_FILE)
        try:
            if kept:
                from mlflow import MlflowClient

                self.client, self.run_id = MlflowClient(tracking_uri=kept["tracking_uri"]), kept["run_id"]
            else:
                self.start(run_dir, config)
            stamp, now = evaluation_stamp(), int(time.time() * 1000)
            batch = [Metric(k, v, now, 0) for k, v in sorted(metrics.items())]
            for i in range(0, len(batch), 1000):  # log_batch takes at most 1000 metrics a call
                self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])
            columns, data = evaluation_table(results)
            self.client.log_dict(self.run_id, {"columns": columns, "data": data}, f"evaluation/{stamp}/scores.json")
            for path in files:
                if path.is_dir():
                    self.client.log_artifacts(self.run_id, str(path), f"evaluation/{stamp}/{path.name}")
                elif path.is_file():
                    self.client.log_artifact(self.run_id, str(path), f"evaluation/{stamp}")
            self.client.set_tag(self.run_id, "acdc.evaluated", stamp)
            if not kept:
                self.close(True)
        except MlflowException as exc:
            raise AcdcError(f"mlflow run {self.run_id}: {exc.message.splitlines()[0]}") from None
        finally:
            self.client = None

    def close(self, finished: bool) -> None:
        client, self.client = self.client, None
        if client is not None and self.run_id is not None:
            client.set_terminated(self.run_id, status="FINISHED" if finished else "KILLED")


class MlflowPlugin(TrackingHooks):
    """The plugin ``mlflow``."""

    name, section, tracker, module = "mlflow", MlflowSection, MlflowTracker, "mlflow"
