"""Built-in plugin ``local-seeds`` (always on): seed specs that are directories.

A spec containing a path separator or naming an existing directory is taken
as a local Hugging Face checkpoint with ``config.json`` and
``model.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl


@hookimpl
def acdc_resolve_seed(spec, cache_dir):
    path = Path(spec).expanduser()
    if "/" not in spec and not path.exists():
        return None
    if not path.is_dir():
        raise AcdcError(f"seed model path {spec} does not exist")
    for needed in ("config.json", "model.safetensors"):
        if not (path / needed).is_file():
            raise AcdcError(f"seed model {spec} has no {needed}")
    return path
