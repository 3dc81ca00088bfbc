"""Built-in plugin ``forged-seeds`` (always on): the experts ``acdc-engine forge`` made.

``forged:BASE`` names a group: the newest expert of each capability forged
from the base spec ``BASE`` (an empty group while none exists), each under its
own spec ``forged:BASE:CAPABILITY``, which also resolves alone. Experts are
directories ``<cache_dir>/forged/*/`` holding a checkpoint and a
``forge.json`` manifest (``base``, ``capability``, ``created``); they are
installed whole, so a manifest means a complete expert.
"""

from __future__ import annotations

import json
from pathlib import Path

from acdc_engine.api import FORGED_PREFIX, AcdcError, hookimpl


def experts(cache_dir: Path, base: str) -> dict[str, Path]:
    """The newest expert of each capability forged from ``base``, by spec, in capability order."""
    newest: dict[str, tuple[float, Path]] = {}
    for manifest in (Path(cache_dir).expanduser() / "forged").glob("*/forge.json"):
        if manifest.parent.name.startswith("."):  # staging or being replaced
            continue
        info = json.loads(manifest.read_text())
        cap = info["capability"]
        if info["base"] == base and (cap not in newest or info["created"] > newest[cap][0]):
            newest[cap] = (info["created"], manifest.parent)
    return {f"{FORGED_PREFIX}{base}:{cap}": newest[cap][1] for cap in sorted(newest)}


@hookimpl
def acdc_resolve_seed(spec, cache_dir):
    if not spec.startswith(FORGED_PREFIX):
        return None
    base, sep, capability = spec[len(FORGED_PREFIX):].rpartition(":")
    if not sep:
        return experts(cache_dir, capability)
    found = experts(cache_dir, base).get(spec)
    if found is None:
        raise AcdcError(f"seed {spec}: no {capability} expert forged from {base} yet "
                        f"(acdc-engine forge --base {base} --capabilities {capability})")
    return found
