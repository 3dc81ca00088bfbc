"""Resolving seed models through plugins, and checking they can be merged."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from acdc_engine.errors import AcdcError
from acdc_engine.checkpoint import CheckpointReader
from acdc_engine.materialise import check_compatible

#: config.json fields that must agree between all seeds and the base.
ARCH_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


def resolve(hook, spec: str, cache_dir: Path) -> Path:
    path = hook.acdc_resolve_seed(spec=spec, cache_dir=cache_dir)
    if path is None:
        raise AcdcError(f"no plugin resolves the seed model {spec!r} (try 'smollm2' or a checkpoint directory)")
    return Path(path)


def check_same_architecture(dirs: dict[str, Path]) -> None:
    """One line naming the first config field, tokenizer file or tensor on which two models differ."""
    (ref_name, ref_dir), *others = dirs.items()
    ref_cfg = json.loads((ref_dir / "config.json").read_text())
    for name, d in others:
        cfg = json.loads((d / "config.json").read_text())
        for key in ARCH_FIELDS:
            if cfg.get(key) != ref_cfg.get(key):
                raise AcdcError(
                    f"seed models {ref_name} and {name} have different architectures: "
                    f"{key} {ref_cfg.get(key)} vs {cfg.get(key)}"
                )
        for tok_file in ("tokenizer.json",):
            ours, theirs = ref_dir / tok_file, d / tok_file
            if ours.is_file() and theirs.is_file() and ours.read_bytes() != theirs.read_bytes():
                raise AcdcError(f"seed models {ref_name} and {name} have different tokenizers ({tok_file} differs)")
    with ExitStack() as stack:
        check_compatible({n: stack.enter_context(CheckpointReader(d / "model.safetensors")) for n, d in dirs.items()})


def resolve_seeds(hook, models_config) -> tuple[dict[str, Path], Path]:
    """Seed directories by spec, and the base directory; all checked compatible."""
    cache = Path(models_config.cache_dir).expanduser()
    seeds = {spec: resolve(hook, spec, cache) for spec in dict.fromkeys(models_config.seeds)}
    base = seeds.get(models_config.base) or resolve(hook, models_config.base, cache)
    check_same_architecture({"base": base, **seeds} if models_config.base not in seeds else dict(seeds))
    return seeds, base
