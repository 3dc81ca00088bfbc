"""Turns a recipe into weights, tensor by tensor, from the parents' files.

Parents and the base are read with :class:`~acdc_engine.models.checkpoint.CheckpointReader`
(each tensor a zero-copy mapping that leaves memory when dropped); the child
goes straight into a :class:`~acdc_engine.models.checkpoint.CheckpointWriter` and/or
into a resident model's tensors (``into``). At no time is a whole model held
in memory. Each tensor's random draws (mutation noise, DARE masks) come from
generators seeded by the recipe's seed and the tensor's name, so the same
recipe on the same parents gives bitwise-identical weights. Crossover
parameters given per block of layers are resolved for each tensor first
(:mod:`acdc_engine.models.layer_blocks`).

Merging is memory-bound and draws from torch's global generator (mergekit's
DARE masks), so it runs tensor by tensor on the calling thread. Mutating is
compute-bound (the SVD mutation's eigendecompositions scale poorly over
threads at these sizes), so tensors are mutated and written on a pool of
worker threads, one intra-op and one BLAS thread each, a few tensors in flight.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from .checkpoint import CheckpointReader, CheckpointWriter
from ..errors import AcdcError
from .layer_blocks import block_params
from .operators import MergeMethod, MutationMethod
from ..recipe import Recipe

MERGE_SALT = 0x5EED
#: Merged tensors waiting for or in a worker, per worker: enough that a long mutation
#: (the embedding) does not leave the other workers idle, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 3


def tensor_seed(recipe_seed: int, name: str) -> int:
    """The seed of one tensor's random draws for one child."""
    return (recipe_seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


class LazyParents(Sequence):
    """The parents' tensors of one name, each mapped only when accessed."""

    def __init__(self, readers: list[CheckpointReader], name: str) -> None:
        self._readers, self._name = readers, name

    def __len__(self) -> int:
        return len(self._readers)

    def __getitem__(self, i):
        return self._readers[i].tensor(self._name)


def check_compatible(readers: dict[str, CheckpointReader]) -> list[str]:
    """Tensor names shared by all checkpoints; one line naming the first mismatch."""
    (ref_label, ref), *others = readers.items()
    names = ref.keys()
    for label, other in others:
        theirs = set(other.keys())
        missing = sorted(set(names) - theirs) or sorted(theirs - set(names))
        if missing:
            raise AcdcError(f"models {ref_label} and {label} differ: tensor {missing[0]} is in only one of them")
        for name in names:
            if ref.shape(name) != other.shape(name):
                raise AcdcError(f"models {ref_label} and {label} differ: tensor {name} has shape "
                                f"{ref.shape(name)} vs {other.shape(name)}")
            if ref.dtype(name) != other.dtype(name):
                raise AcdcError(f"models {ref_label} and {label} differ: tensor {name} has dtype "
                                f"{ref.dtype(name)} vs {other.dtype(name)}")
    return names


@contextmanager
def mutation_pool() -> Iterator[tuple[ThreadPoolExecutor, int]]:
    """Worker threads (as many as torch's intra-op threads), one intra-op thread each and
    one BLAS thread (NumPy's, SciPy's) per call; the caller's thread counts are restored
    afterwards (both settings are process-wide)."""
    threads = torch.get_num_threads()
    with threadpool_limits(limits=1, user_api="blas"):
        pool = ThreadPoolExecutor(threads, thread_name_prefix="mutate", initializer=torch.set_num_threads,
                                  initargs=(1,))
        try:
            yield pool, threads
        finally:
            pool.shutdown(cancel_futures=True)
            torch.set_num_threads(threads)


def materialise(
    recipe: Recipe,
    *,
    parent_files: list[Path],
    base_file: Path,
    merge: MergeMethod | None,
    mutation: MutationMethod | None,
    out_file: Path | None = None,
    into: dict[str, torch.Tensor] | None = None,
) -> None:
    """Builds the child of ``recipe`` into ``out_file`` (atomically) and/or ``into``.

    ``into`` maps tensor names to a resident model's tensors, overwritten in
    place (cast to their dtype); names missing from it are skipped.
    """
    cparams, mparams = dict(recipe.crossover_params), dict(recipe.mutation_params)
    with ExitStack() as stack:
        parents = [stack.enter_context(CheckpointReader(p)) for p in parent_files]
        base = stack.enter_context(CheckpointReader(base_file))
        names = check_compatible({"base": base, **dict(zip(recipe.parents, parents))})
        writer = None
        if out_file is not None:
            writer = CheckpointWriter(out_file, {n: (base.dtype(n), base.shape(n)) for n in names})

        def finish(name: str, child: torch.Tensor, target: torch.Tensor | None) -> None:
            if mutation is not None and mutation.applies_to(name, child):
                gen = torch.Generator().manual_seed(tensor_seed(recipe.seed, name))
                child = mutation.mutate(name, child, mparams, gen)
            if writer is not None:
                writer.write(name, child.to(base.dtype(name)))
            if target is not None and child is not target:
                target.copy_(child)

        try:
            with mutation_pool() as (pool, workers):  # left (workers done) before any abort below
                in_flight: set[Future] = set()
                for name in names:
                    target = None if into is None else into.get(name)
                    child = _merged_tensor(recipe, name, parents, base, merge, cparams, target)
                    in_flight.add(pool.submit(finish, name, child, target))
                    if len(in_flight) >= IN_FLIGHT_PER_WORKER * workers:  # bounds the merged tensors held
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()
                for future in in_flight:
                    future.result()
            if writer is not None:
                writer.commit()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise


def _merged_tensor(recipe, name, parents, base, merge, cparams, target):
    """One merged tensor (a copy of the only parent without a merge), computed into ``target`` where it can be."""
    lazy = LazyParents(parents, name)
    writable = target if target is not None and target.dtype == base.dtype(name) else None
    if merge is None:
        return lazy[0].clone()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(tensor_seed(recipe.seed ^ MERGE_SALT, name))  # CPU only: cheap
        child = merge.merge(name, lazy, base.tensor(name), block_params(cparams, name), out=writable)
    return child if child is writable else child.to(base.dtype(name)).contiguous()
