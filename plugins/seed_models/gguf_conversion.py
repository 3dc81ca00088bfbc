"""Converting a GGUF file once into a cached safetensors checkpoint.

Shared by the seed-provider plugins. The conversion (transformers' GGUF
loader) dequantises to fp32 and is written to a temporary directory that is
renamed into the cache only when complete, so an interrupted conversion
leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from acdc_engine.api import folded_bars


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Writes a dequantised fp32 safetensors checkpoint of ``gguf`` to ``out_dir``, showing its progress as
    one step of its own (on stderr): transformers' bars (de-quantizing, loading, writing) are folded into it
    rather than printed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    label = f"converting {gguf.name} to safetensors (once)"
    with folded_bars(label) as progress:
        step = progress.add_task(label, total=3)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        progress.advance(step)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        progress.advance(step)
        model.hf_quantizer = None  # weights are already dequantised; lets save_pretrained run
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        progress.advance(step)
        progress.remove_task(step)


def cached_checkpoint(gguf: Path, cache_dir: Path, name: str) -> Path:
    """``cache_dir/name``, converted from ``gguf`` the first time (atomically)."""
    final = Path(cache_dir).expanduser() / name
    if (final / "model.safetensors").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        convert_gguf(gguf, tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "model.safetensors").is_file():  # not a concurrent winner
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
