"""Built-in plugin ``local-seeds`` (always on): seed specs that are local paths.

A spec containing a path separator or naming an existing path is either a
Hugging Face checkpoint directory with ``config.json``,
``model.safetensors`` and tokenizer files, or a ``.gguf`` file, converted once into the cache
(keyed by the file's content hash).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from acdc_engine.api import AcdcError, hookimpl
from acdc_engine.plugins.gguf_conversion import cached_checkpoint


#: Any one of these makes a folder's tokenizer loadable.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()[:16]


@hookimpl
def acdc_resolve_seed(spec, cache_dir):
    path = Path(spec).expanduser()
    if "/" not in spec and not path.exists():
        return None
    if path.is_file() and path.suffix == ".gguf":
        return cached_checkpoint(path, cache_dir, f"{path.stem}-{_digest(path)}")
    if not path.is_dir():
        raise AcdcError(f"seed model path {spec} does not exist")
    for needed in ("config.json", "model.safetensors"):
        if not (path / needed).is_file():
            raise AcdcError(f"seed model {spec} has no {needed}")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise AcdcError(f"seed model {spec} has no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    return path
