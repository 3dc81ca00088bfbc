"""Task intake: new task families asked of the generators, vetted, and accepted into the pool.

Every ``acdc_generate_tasks`` implementation answers every request; their
families are merged round-robin, duplicates (same source digest) skipped and
at most ``n`` kept per request. Each family then passes the novelty hooks
(against every task ever accepted) and the sandbox (it must produce instances,
at most ``sandbox.max_instances`` with instructions of at most
``sandbox.max_instruction_chars``, and score an empty submission) or is
recorded as ``rejected`` with its reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from itertools import zip_longest

from ..config import SandboxConfig
from ..errors import AcdcError
from .task_pool import TaskPool
from ..store import Commit
from ..tasks import Instance, TaskCodeError, TaskRequest, TaskSpec, checked_scores
from ..events import Advanced, TaskRejected, TasksAdded


INSTANCE_DATA_BYTES = 1_000_000  # most JSON bytes of one family's instance data


class TaskIntake:
    """Brings new families into ``pool``; ``emit(event)`` tells the plugins of rejects and
    additions (and one ``advance`` per request)."""

    def __init__(self, *, hook, pool: TaskPool, limits: SandboxConfig, emit: Callable[..., None]) -> None:
        self.hook, self.pool, self.limits, self.emit = hook, pool, limits, emit

    def add(self, requests: list[TaskRequest], gen: int, commit: Commit) -> list[str]:
        """Generates families, vets them (novelty, sandbox) and accepts the sound ones; returns their ids.

        A parent whose harder variant is accepted is held in limbo. An empty pool afterwards stops the run
        with one line counting the rejects."""
        accepted, rejected = [], Counter()
        for spec, request in self.collect(requests):
            status, reason, instances = self.vet(spec)
            task_id = self.pool.add(spec, instances, gen, status, reason, commit)
            if status == "active":
                accepted.append(task_id)
                if request.mode == "harder" and request.parent_id in self.pool.active:
                    self.pool.hold(request.parent_id, task_id, commit)
            else:
                rejected[reason.split(":", 1)[0]] += 1
                self.emit(TaskRejected(name=spec.name, reason=reason, pool=self.pool.counts()))
        if accepted:
            self.emit(TasksAdded(generation=gen, accepted=[self.pool[t].spec.name for t in accepted],
                                 pool=self.pool.counts()))
        if not self.pool.active:
            why = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none generated"
            raise AcdcError(f"the task pool is empty at generation {gen}: no new task was accepted (rejected: {why})")
        return accepted

    def collect(self, requests: list[TaskRequest]) -> list[tuple[TaskSpec, TaskRequest]]:
        """Every generator's families per request, round-robin, duplicates skipped, at most ``n`` kept.

        Families a generator gave up on (``rejected`` set) all pass, for the reject log.
        """
        known = self.pool.digests()
        out = []
        for request in requests:
            results = [r or [] for r in self.hook.acdc_generate_tasks(request=request)]
            merged = [s for group in zip_longest(*results) for s in group if s is not None]
            fresh = list({s.digest: s for s in merged if not s.rejected and s.digest not in known}.values())
            kept = fresh[: request.n] + [s for s in merged if s.rejected]
            known.update(s.digest for s in kept)
            out += [(s, request) for s in kept]
            self.emit(Advanced(n=1))
        return out

    def vet(self, spec: TaskSpec) -> tuple[str, str | None, list[Instance]]:
        """(status, reason, instances): given up on, not novel, failing in the sandbox, or active."""
        if spec.rejected:
            return "rejected", spec.rejected, []
        archive = [self.pool[t].spec for t in self.pool.accepted()]
        reason = next((r for r in self.hook.acdc_task_novelty(candidate=spec, archive=archive) if r), None)
        if reason:
            return "rejected", reason, []
        try:
            instances = self.hook.acdc_task_instances(task=spec, limits=self.limits)
            checked_scores(self.hook.acdc_score_submissions(task=spec, instances=instances,
                                                            submissions=[""] * len(instances), limits=self.limits),
                           len(instances))
        except TaskCodeError as exc:
            return "rejected", f"failed in sandbox: {exc}", []
        if len(instances) > self.limits.max_instances:
            return "rejected", (f"too large: get_tasks() gave {len(instances)} instances, over "
                                f"sandbox.max_instances = {self.limits.max_instances}"), []
        data_bytes = sum(len(json.dumps(i.data)) for i in instances)
        if data_bytes > INSTANCE_DATA_BYTES:
            return "rejected", (f"too large: get_tasks() gave {data_bytes} bytes of instance data, over "
                                f"{INSTANCE_DATA_BYTES} (it is stored and sent with every score() call)"), []
        longest = max(instances, key=lambda i: len(i.instruction), default=None)
        if longest is not None and len(longest.instruction) > self.limits.max_instruction_chars:
            return "rejected", (f"too large: get_instructions() gave {len(longest.instruction)} characters for "
                                f"instance {longest.key!r}, over sandbox.max_instruction_chars = "
                                f"{self.limits.max_instruction_chars}"), []
        return "active", None, instances
