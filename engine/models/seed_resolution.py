"""Resolving seed models through plugins, and checking they can be merged."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from ..errors import AcdcError
from .checkpoint import CheckpointReader
from .materialise import check_compatible

#: config.json fields that must agree between all seeds and the base.
ARCH_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
#: Files that carry a tokenizer's chat template beside (or instead of) tokenizer_config.json's own.
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def expand(hook, spec: str, cache_dir: Path) -> dict[str, Path]:
    """The directories a seed spec names, by their own specs (a group spec names any number)."""
    found = hook.acdc_resolve_seed(spec=spec, cache_dir=cache_dir)
    if found is None:
        raise AcdcError(f"no plugin resolves the seed model {spec!r} (try 'smollm2' or a checkpoint directory)")
    if isinstance(found, dict):
        return {name: Path(d) for name, d in found.items()}
    return {spec: Path(found)}


def resolve(hook, spec: str, cache_dir: Path) -> Path:
    """The one directory a seed spec names."""
    found = expand(hook, spec, cache_dir)
    if list(found) != [spec]:
        raise AcdcError(f"seed spec {spec!r} names a group of models ({len(found)}), not one model")
    return found[spec]


def read_model_config(model_dir: Path) -> dict:
    """A checkpoint's ``config.json``; one line naming the file if it cannot be read or is not a JSON object."""
    path = Path(model_dir) / "config.json"
    try:
        cfg = json.loads(path.read_bytes())
    except OSError as exc:
        raise AcdcError(f"cannot read the model config {path}: {exc.strerror}") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise AcdcError(f"model config {path} is not JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(cfg, dict):
        raise AcdcError(f"model config {path} is not a JSON object (a {type(cfg).__name__})")
    return cfg


def check_same_architecture(dirs: dict[str, Path]) -> None:
    """One line naming the first config field, tokenizer file or tensor on which two models differ (or a
    config.json that is not JSON)."""
    (ref_name, ref_dir), *others = dirs.items()
    ref_cfg = read_model_config(ref_dir)
    for name, d in others:
        cfg = read_model_config(d)
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


def check_chat_template(spec: str, model_dir: Path) -> None:
    """One line naming a base model whose tokenizer has no chat template (a base, not an instruct, model):
    every answer the engine asks for is a chat turn."""
    try:
        settings = json.loads((model_dir / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        settings = {}
    if settings.get("chat_template") or any((model_dir / f).is_file() for f in CHAT_TEMPLATE_FILES):
        return
    raise AcdcError(f"base model {spec} ({model_dir}) has no chat template, and every answer is asked as a chat "
                    "turn: use an instruct (chat) model, or add a chat_template.jinja beside its tokenizer")


def resolve_seeds(hook, models_config) -> tuple[dict[str, Path], Path]:
    """Seed directories by spec (group specs expanded), and the base directory; all checked compatible."""
    cache = Path(models_config.cache_dir).expanduser()
    seeds: dict[str, Path] = {}
    for spec in models_config.seeds:
        seeds.update(expand(hook, spec, cache))
    if not seeds:
        raise AcdcError(f"the seed specs {', '.join(models_config.seeds)} name no model yet")
    base = seeds.get(models_config.base) or resolve(hook, models_config.base, cache)
    check_chat_template(models_config.base, base)
    check_same_architecture({"base": base, **seeds} if models_config.base not in seeds else dict(seeds))
    return seeds, base
