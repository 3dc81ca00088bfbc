"""The Ray executor: materialisation and generation on actors with resident models.

Each actor builds its own plugin manager from the run's config and keeps one
resident backend (:class:`~acdc_engine.run.executor.Worker`), with the CPUs and
GPUs of ``[ray]``. The driver (the loop) hands out one job at a time to each
idle actor and receives the results; it stays the only writer of the run
store. An actor that dies mid-job is replaced and its job re-queued (at most
``ray.max_retries`` times per job); jobs are pure functions of their inputs,
so the run's result does not change.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

import ray
from ray.exceptions import RayActorError, RayTaskError

from ..errors import AcdcError
from .executor import GenerateJob, MaterialiseJob, OnResult
from ..events import Advanced, WorkerLost


CLOSE_TIMEOUT_S = 30  # how long the executor waits for its actors to close their plugins


@ray.remote
class RayWorker:
    """One actor: a :class:`~acdc_engine.run.executor.Worker` with its own plugins and resident backend."""

    def __init__(self, config_json: str, base_dir: str) -> None:
        import json

        from ..config import validate
        from .executor import Operators, Worker
        from ..plugin_manager import PluginContext

        config = validate(json.loads(config_json))  # the engine's sections and the plugins' own
        self.plugins = PluginContext(config).open()  # closed by close(), before the executor kills the actor
        hook = self.plugins.hook
        self.worker = Worker(config=config, hook=hook, base_dir=Path(base_dir),
                             operators=Operators(hook, config.evolution))

    def materialise(self, job: MaterialiseJob) -> None:
        self.worker.materialise(job)

    def generate(self, job: GenerateJob) -> tuple[list[str], int]:
        return self.worker.generate(job)

    def close(self) -> None:
        """Releases the worker's backend and unconfigures the actor's plugins (its sandbox pools)."""
        try:
            self.worker.close()
        finally:
            self.plugins.close()


class RayExecutor:
    """Runs jobs on ``ray.workers`` actors, re-queueing the jobs of actors that die."""

    def __init__(self, *, config, base_dir: Path, emit) -> None:
        self.cfg, self.base_dir, self.emit = config, Path(base_dir), emit
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            # its INFO and WARNING lines (start-up, token notice) would print across the live view; errors still do
            ray.init(address=config.ray.address or None, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        self.actors = [self._start() for _ in range(config.ray.workers)]
        self.inflight: dict = {}  # object ref -> (actor slot, job index, job)
        self.restarts = 0

    def _start(self):
        return RayWorker.options(num_cpus=self.cfg.ray.cpus_per_worker, num_gpus=self.cfg.ray.gpus_per_worker
                                 ).remote(self.cfg.model_dump_json(), str(self.base_dir))

    def materialise(self, jobs: list[MaterialiseJob]) -> None:
        self._run("materialise", jobs, lambda i, result: self.emit(Advanced(n=1)))

    def generate(self, jobs: list[GenerateJob], on_result: OnResult) -> None:
        def done(i, result):
            texts, tokens = result
            on_result(i, texts, tokens)
            self.emit(Advanced(n=len(texts)))

        self._run("generate", jobs, done)

    def _run(self, method: str, jobs: list, done) -> None:
        """Keeps every actor busy until all jobs are done; replaces dead actors, re-queues their jobs."""
        queue, tries = deque(enumerate(jobs)), [0] * len(jobs)
        idle = list(range(len(self.actors)))
        while queue or self.inflight:
            while queue and idle:
                slot = idle.pop()
                i, job = queue.popleft()
                self.inflight[getattr(self.actors[slot], method).remote(job)] = (slot, i, job)
            [ref], _ = ray.wait(list(self.inflight), num_returns=1)
            slot, i, job = self.inflight.pop(ref)
            idle.append(slot)
            try:
                result = ray.get(ref)
            except RayActorError as exc:
                tries[i] += 1
                if tries[i] > self.cfg.ray.max_retries:
                    raise AcdcError(f"ray worker died {tries[i]} times on one {method} job: "
                                    f"{str(exc).splitlines()[0]}") from None
                self.actors[slot] = self._start()
                self.restarts += 1
                self.emit(WorkerLost(slot=slot, job=method, retry=tries[i]))
                queue.appendleft((i, job))
                continue
            done(i, result)

    def close(self) -> None:
        """Closes every live actor's plugins (an actor that died or hangs is not waited for), then kills them."""
        closing = [actor.close.remote() for actor in self.actors]
        _, hanging = ray.wait(closing, num_returns=len(closing), timeout=CLOSE_TIMEOUT_S)
        for ref in set(closing) - set(hanging):
            try:
                ray.get(ref)
            except (RayActorError, RayTaskError):  # dead already, or its plugins failed to close
                pass
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self.started_ray:
            ray.shutdown()
