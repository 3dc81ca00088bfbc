"""Where materialisation and generation run: in this process, or on Ray actors.

The loop hands an executor batches of jobs and gets results back; it stays
the only writer of the run store. :class:`LocalExecutor` runs jobs one after
another with one resident backend. The Ray executor
(:mod:`acdc_engine.run.ray_executor`, extra ``acdc-engine[ray]``) runs them on
actors that each hold a resident backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import AcdcError
from ..models.materialise import materialise
from ..models.operators import OperatorRegistry
from ..recipe import Recipe
from ..events import Advanced


@dataclass(frozen=True)
class MaterialiseJob:
    """Build ``recipe``'s weights from its parents' files into ``out_file``."""

    recipe: Recipe
    parent_files: list[Path]
    out_file: Path


@dataclass(frozen=True)
class GenerateJob:
    """Answer ``instructions`` with the weights in ``weights_file``."""

    weights_file: Path
    instructions: list[str]


#: ``on_result(job index, answers, tokens generated)``, called in the driver as each job finishes.
OnResult = Callable[[int, list[str], int], None]


class Operators:
    """The config's merge and mutation methods (what new children are made with), over the registry of
    every operator by name (what a recipe is materialised with)."""

    def __init__(self, hook, evolution) -> None:
        self.registry = OperatorRegistry(hook)
        self.merge = self.registry.merge(evolution.crossover)
        self.mutation = self.registry.mutation(evolution.mutation)


class Worker:
    """What one executor slot does: materialise recipes, answer with a resident backend."""

    def __init__(self, *, config, hook, base_dir: Path, operators: Operators) -> None:
        self.cfg, self.hook, self.base_dir, self.ops = config, hook, Path(base_dir), operators
        self.backend = None

    def materialise(self, job: MaterialiseJob) -> None:
        merge, mutation = self.ops.registry.for_recipe(job.recipe)
        materialise(job.recipe, parent_files=job.parent_files, base_file=self.base_dir / "model.safetensors",
                    merge=merge, mutation=mutation, out_file=job.out_file)

    def generate(self, job: GenerateJob, on_batch: Callable[[int], None] | None = None) -> tuple[list[str], int]:
        if self.backend is None:
            self.backend = self.hook.acdc_make_backend(config=self.cfg, model_dir=self.base_dir)
            if self.backend is None:
                raise AcdcError(f"no plugin provides the backend {self.cfg.generation.backend!r}")
        self.backend.load_weights(job.weights_file)
        before = getattr(self.backend, "generated_tokens", 0)
        texts = self.backend.generate(job.instructions, max_new_tokens=self.cfg.generation.max_new_tokens,
                                      on_batch=on_batch)
        return texts, getattr(self.backend, "generated_tokens", 0) - before

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


class LocalExecutor:
    """Runs every job in this process, one at a time, on one :class:`Worker`."""

    def __init__(self, *, worker: Worker, emit: Callable[..., None]) -> None:
        self.worker, self.emit = worker, emit

    def materialise(self, jobs: list[MaterialiseJob]) -> None:
        for job in jobs:
            self.worker.materialise(job)
            self.emit(Advanced(n=1))

    def generate(self, jobs: list[GenerateJob], on_result: OnResult) -> None:
        for i, job in enumerate(jobs):
            texts, tokens = self.worker.generate(job, on_batch=lambda k: self.emit(Advanced(n=k)))
            on_result(i, texts, tokens)

    def close(self) -> None:
        self.worker.close()


def make_executor(config, worker: Worker, emit: Callable[..., None]):
    """The executor named by ``run.executor``."""
    if config.run.executor == "local":
        return LocalExecutor(worker=worker, emit=emit)
    try:
        from .ray_executor import RayExecutor
    except ImportError as exc:
        raise AcdcError(f"run.executor = 'ray' needs Ray ({exc.name} is missing): "
                        "pip install 'acdc-engine[ray]'") from None
    return RayExecutor(config=config, base_dir=worker.base_dir, emit=emit)
