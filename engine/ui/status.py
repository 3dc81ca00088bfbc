"""Where a run stands, as plain data: what ``acdc-engine status`` prints, and its ``--json`` document.

The JSON document is a contract (docs/architecture.md, "status --json"): it carries
``schema_version`` (:data:`SCHEMA_VERSION`), the run's resolved config, and standard JSON only. A
number that is not finite (the DNS score of the archive's fittest member is infinite: it has no
fitter neighbour) is written ``null``; beside it, in the same object, ``KEY_reason`` says what it
was and why, and the top-level ``not_finite`` lists every such place as a JSON Pointer.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from .. import __version__
from ..recipe import Recipe
from ..store import RunStore

#: Version of the ``status --json`` schema: raised when a field is removed, renamed or changes its type
#: or meaning; adding a field keeps it.
SCHEMA_VERSION = 1

#: Why a key holds a number that is not finite, where the engine knows (else a generic reason).
_REASONS = {
    ("score", math.inf): "Infinity: the archive's score of its fittest member, which has no fitter neighbour "
                         "(Dominated Novelty Search)",
}


def run_status(store: RunStore) -> dict:
    """Where a run stands (what ``status`` prints): plain data, and the archive's rows as
    :class:`~acdc_engine.records.ArchiveRow`; numbers may be infinite or NaN."""
    config = store.config()
    last = store.last_generation()
    seeds = {Recipe.from_json(r["recipe"]).seed_spec: r["digest"] for r in store.models()
             if Recipe.from_json(r["recipe"]).is_seed}
    counts: dict[str, int] = {}
    reasons: dict[str, dict[str, int]] = {"rejected": {}, "removed": {}}
    for row in store.tasks():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        if row["status"] in reasons:
            by = reasons[row["status"]]
            category = reason_category(row["reason"])
            by[category] = by.get(category, 0) + 1
    force = store.task_force()
    return {
        "run_dir": str(store.run_dir), "last_generation": last, "generations": config.run.generations,
        "plugins": list(config.run.plugins), "seeds": seeds,
        "archive": store.generation(last)["archive"] if last is not None else [],
        "tasks": counts, "task_reasons": reasons, "per_generation": store.all_stats(), "disk": store.disk_usage(),
        "task_force": None if force is None else {
            "model_ids": json.loads(force["model_ids"]), "coverage": force["coverage"],
            "seed_coverage": force["seed_coverage"], "n_tasks": force["n_tasks"]},
        "config": config.model_dump(mode="json"),
    }


def reason_category(reason: str | None) -> str:
    """The part of a task's reason before the first colon, e.g. ``not novel``."""
    return (reason or "unknown").split(":", 1)[0].strip() or "unknown"


def status_document(facts: dict) -> dict:
    """The ``status --json`` document of :func:`run_status`'s facts: versioned, standard JSON only."""
    not_finite: list[dict[str, str]] = []
    body = finite(facts | {"archive": [asdict(r) for r in facts["archive"]]}, not_finite)
    return {"schema_version": SCHEMA_VERSION, "engine_version": __version__, **body, "not_finite": not_finite}


def status_json(facts: dict) -> str:
    """:func:`status_document` as text (``allow_nan=False``: a non-finite number left over is a bug, not
    invalid JSON on stdout)."""
    return json.dumps(status_document(facts), indent=1, allow_nan=False)


def _spelling(x: float) -> str:
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _not_finite(x: Any) -> bool:
    return isinstance(x, float) and not math.isfinite(x)


def finite(value: Any, found: list[dict[str, str]], path: str = "") -> Any:
    """A copy of ``value`` with every number that is not finite replaced by ``None``; in an object the key
    ``KEY_reason`` is added beside it, and each place is appended to ``found`` as
    ``{"path": JSON Pointer, "value": "Infinity" | "-Infinity" | "NaN"}``."""
    if _not_finite(value):
        found.append({"path": path, "value": _spelling(value)})
        return None
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            key = str(key)
            out[key] = finite(item, found, f"{path}/{key.replace('~', '~0').replace('/', '~1')}")
            if _not_finite(item):
                out[f"{key}_reason"] = _REASONS.get((key, item)) or (
                    f"{_spelling(item)}: not a finite number, which JSON cannot hold")
        return out
    if isinstance(value, (list, tuple)):
        return [finite(item, found, f"{path}/{i}") for i, item in enumerate(value)]
    return value
