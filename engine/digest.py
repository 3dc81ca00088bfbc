"""Content digests of weights: a seed by its file's bytes, a child by its recipe.

Materialisation is deterministic (see :mod:`acdc_engine.models.materialise`), so a
child's weights are fixed by its recipe, its parents' weights and the base's
weights; its digest hashes exactly those, with parent ids replaced by the
parents' digests. Two children with equal digests have bitwise-equal weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .recipe import Recipe


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def recipe_digest(recipe: Recipe, *, parent_digests: list[str], base_digest: str) -> str:
    """The digest of a child's weights, from its recipe and its inputs' digests."""
    genome = json.loads(recipe.to_json())
    genome["parents"] = parent_digests
    genome["base"] = base_digest
    return hashlib.sha256(json.dumps(genome, sort_keys=True).encode()).hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 of a text, e.g. a prompt or a decoding-settings record."""
    return hashlib.sha256(text.encode()).hexdigest()
