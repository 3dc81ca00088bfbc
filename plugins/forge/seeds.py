"""The forged experts as seeds: ``forged:BASE`` names a group, the newest expert of each capability forged
from the base spec ``BASE`` (an empty group while none exists), each under its own spec
``forged:BASE:CAPABILITY``, which also resolves alone."""

from __future__ import annotations

from pathlib import Path

from acdc_engine.api import AcdcError
from .manifest import installed

#: Spec prefix of the forged experts: ``forged:BASE`` (a group), ``forged:BASE:CAPABILITY`` (one expert).
FORGED_PREFIX = "forged:"


def experts(cache_dir: Path, base: str) -> dict[str, Path]:
    """The newest expert of each capability forged from ``base``, by spec, in capability order."""
    newest: dict[str, tuple[float, Path]] = {}
    for folder, info in installed(cache_dir):
        cap = info["capability"]
        if info["base"] == base and (cap not in newest or info["created"] > newest[cap][0]):
            newest[cap] = (info["created"], folder)
    return {f"{FORGED_PREFIX}{base}:{cap}": newest[cap][1] for cap in sorted(newest)}


def resolve(spec: str, cache_dir: Path) -> Path | dict[str, Path] | None:
    """A ``forged:`` spec's directory (one expert) or group (``forged:BASE``); ``None`` for other specs."""
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
