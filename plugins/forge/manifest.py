"""The forged experts' cache layout and manifest format, defined once.

An expert is a directory ``<cache_dir>/forged/<base>-<capability>-<key>/``
holding a checkpoint in the base's layout and ``forge.json``: ``base`` (the
base's spec), ``base_digest``, ``capability``, ``recipe``, ``task_examples``,
``replay_examples``, ``seconds`` and ``created`` (a Unix time). Experts are
installed whole, so a manifest means a complete expert; a directory whose name
starts with ``.`` is being written or replaced.
"""

from __future__ import annotations

import json
from pathlib import Path

FORGED_DIR = "forged"
MANIFEST = "forge.json"


def write_manifest(expert_dir: Path, **fields) -> None:
    """Writes the manifest of an expert directory (before it is installed)."""
    (Path(expert_dir) / MANIFEST).write_text(json.dumps(fields, indent=1))


def read_manifest(expert_dir: Path) -> dict:
    """The manifest of an installed expert directory."""
    return json.loads((Path(expert_dir) / MANIFEST).read_text())


def installed(cache_dir: Path) -> list[tuple[Path, dict]]:
    """Every complete expert in the cache with its manifest."""
    found = []
    for manifest in (Path(cache_dir).expanduser() / FORGED_DIR).glob(f"*/{MANIFEST}"):
        if not manifest.parent.name.startswith("."):  # staging or being replaced
            found.append((manifest.parent, json.loads(manifest.read_text())))
    return found
