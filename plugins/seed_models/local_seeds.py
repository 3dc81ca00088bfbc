"""Built-in plugin ``local-seeds`` (always on): seed specs that are local paths or Hub ids.

A spec containing a path separator or naming an existing path is either a
Hugging Face checkpoint directory with ``config.json``,
``model.safetensors`` and tokenizer files, or a ``.gguf`` file, converted once into the cache
(keyed by the file's content hash). A spec ``ORG/NAME`` that is no path here is a Hugging Face Hub
id, found offline in the local Hugging Face cache (``HF_HUB_CACHE``; ``hf download ORG/NAME`` fills
it): its snapshot of ``main`` is the checkpoint directory; never downloaded.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from acdc_engine.api import AcdcError, hookimpl
from .gguf_conversion import cached_checkpoint


#: A Hugging Face Hub repository id, ``ORG/NAME`` (tried where no such path exists here).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")

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
    if not path.exists() and HUB_ID.fullmatch(spec):
        path = hub_snapshot(spec)
    if not path.is_dir():
        raise AcdcError(f"seed model path {spec} does not exist")
    for needed in ("config.json", "model.safetensors"):
        if not (path / needed).is_file():
            raise AcdcError(f"seed model {spec} has no {needed}")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise AcdcError(f"seed model {spec} has no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    return path


def hub_snapshot(repo_id: str) -> Path:
    """The local Hugging Face cache's snapshot of the Hub model ``repo_id`` (its ``main``), offline; one line
    naming the id where the cache does not hold it."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        raise AcdcError(f"seed model {repo_id} is neither a folder here nor a Hugging Face Hub model in the local "
                        f"cache ({constants.HF_HUB_CACHE}); download it first (hf download {repo_id}) or give "
                        "a checkpoint folder") from None
