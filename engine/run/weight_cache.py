"""The run's kept weight files: by content digest, for elites and seeds, within a disk budget.

A kept file lives at ``weights/<sha256>.safetensors``, so models with
identical weights share one file. At each commit the files of the current
archive members and of the seeds are kept; when the members' files pass
``store.weights_budget_mb`` some are evicted (seeds are neither counted nor
evicted: they are hard links to the seed cache where the file system allows).
The files the next generation reads (its parents; before a task adaptation
every member; before the task force the members it evaluates: the loop's
:meth:`~acdc_engine.run.loop.Coevolution.next_reads`) go last, and with
``store.keep_next_reads`` (the default) never: evicting one would only have
that generation rebuild it, on top of the budget until its commit, so it
would cost time and save no disk at the peak. Among the others, and then
among the reads, the least recently used go first. Once the run has finished
nothing is read any more and the files are trimmed to the budget
(:meth:`~acdc_engine.run.ledger.Ledger.trim`). A model without a file is rebuilt
from its ancestry when it is needed
(:func:`~acdc_engine.models.lineage.rebuild_weights`, which checks the recorded
digest) and its file is kept again from then on, as the most recently used.
A kept file is trusted only once its bytes hash to its digest (hashed once
per process, see :meth:`~acdc_engine.store.RunStore.kept_file`): a damaged
one is reported (event ``weights_damaged``) and rebuilt the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..store import RunStore
from ..events import WeightsDamaged, WeightsRebuilt

#: ``rebuild(model_id, out_file=path)``: writes the model's weights, rebuilt from its ancestry.
Rebuild = Callable[..., None]


class WeightCache:
    """Which weight files a run keeps, when they were last used, and rebuilding the missing ones."""

    def __init__(self, store: RunStore, *, budget_mb: int, rebuild: Rebuild, emit: Callable[..., None],
                 keep_reads: bool = True) -> None:
        self.store, self.rebuild, self.emit = store, rebuild, emit
        self.budget = budget_mb * 2**20  # 0: unlimited
        self.keep_reads = keep_reads  # the next generation's reads are never evicted (store.keep_next_reads)
        self.last_used = {r["digest"]: r["last_used"] for r in store.weight_files()}
        self.clock = max(self.last_used.values(), default=0)
        self.rebuilt = 0
        self.rebuilt_s = 0.0  # seconds spent rebuilding since the last settle
        self.reported: set[str] = set()  # digests of damaged files already told of

    def touch(self, digest: str) -> None:
        """Marks the file as just used (least recently used files are evicted first)."""
        self.clock += 1
        self.last_used[digest] = self.clock

    def file(self, model_id: str, digest: str) -> Path:
        """The kept file with ``model_id``'s weights, rebuilt from its ancestry if it was evicted."""
        path = self.store.weights_path(digest)
        kept, problem = self.store.kept_file(digest)
        if kept is None:
            if problem:
                self.damaged(model_id, digest, problem)
            started = time.monotonic()
            staged = self.store.staging_dir / path.name
            self.rebuild(model_id, out_file=staged)  # checked against the digest (rebuild_weights)
            staged.replace(path)  # kept or cleaned up at the next commit; replaces a damaged file, never writes it
            self.store.mark_verified(digest)
            seconds = time.monotonic() - started
            self.rebuilt += 1
            self.rebuilt_s += seconds
            self.emit(WeightsRebuilt(model_id=model_id, seconds=round(seconds, 1)))
        self.touch(digest)
        return path

    def damaged(self, model_id: str, digest: str, problem: str) -> None:
        """Tells of a damaged kept file (event ``weights_damaged``), once per file and process."""
        if digest not in self.reported:
            self.reported.add(digest)
            self.emit(WeightsDamaged(model_id=model_id, path=str(self.store.weights_path(digest)),
                                     reason=problem))

    def settle(self, kept: dict[str, str], seeds: set[str], new_files: dict[str, Path],
               reads: set[str] = frozenset()) -> tuple[list[dict], list[str], int]:
        """The ``weight_files`` rows after a commit, the model ids whose files are evicted, and
        how many files were rebuilt since the last settle (their seconds: :attr:`rebuilt_s`, read before).

        ``kept`` maps the model ids that may keep a file (archive members and
        seeds) to their digests; ``seeds`` are the digests never evicted;
        ``new_files`` are files about to be placed; ``reads`` are the digests
        the next generation reads: evicted last, and with ``keep_reads`` never.
        A kept model whose file is already gone stays without one until it is rebuilt.
        """
        sizes = {}
        for digest in dict.fromkeys(kept.values()):
            path = new_files.get(digest) or self.store.weights_path(digest)
            if path.is_file():
                sizes[digest] = path.stat().st_size
                self.last_used.setdefault(digest, 0)
        total = sum(n for d, n in sizes.items() if d not in seeds)  # seeds: never evicted, not counted
        evicted = []
        order = sorted((d for d in sizes if d not in seeds), key=lambda d: (d in reads, self.last_used[d], d))
        for digest in order:
            if not self.budget or total <= self.budget or (self.keep_reads and digest in reads):
                break
            total -= sizes.pop(digest)
            evicted.append(digest)
        rows = [{"digest": d, "size": n, "seed": int(d in seeds), "last_used": self.last_used[d]}
                for d, n in sorted(sizes.items())]
        rebuilt, self.rebuilt, self.rebuilt_s = self.rebuilt, 0, 0.0
        return rows, sorted(m for m, d in kept.items() if d in evicted), rebuilt
