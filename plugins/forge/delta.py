"""An expert as its delta over the base: the trained LoRA factors of each adapted weight, and the one way
they are applied, exact on any machine.

A forged expert is ``W + B @ A`` for each adapted weight ``W`` of the base. The
forge writes the factors to ``delta.safetensors`` beside the expert's weights
(about 20 MB for SmolLM2-135M at rank 16, against 538 MB of weights), and it
writes the weights themselves from those factors with :func:`applied`. That
sum is made of elementwise IEEE operations in a fixed order (rank-one updates
in float64, rounded once to the weight's dtype), which no BLAS library or
thread count reorders. So the weights rebuilt from a delta, here or on another
machine, are the forge's own file bit for bit; this is what lets the
repository ship deltas (:mod:`.shipped`) instead of experts.

A delta file holds ``<weight name>.lora_A`` (rank x in) and
``<weight name>.lora_B`` (out x rank, the LoRA scaling folded in) in float32,
and its safetensors metadata carries the expert's manifest (key ``forge``) and
the digest of the weights it rebuilds (key ``expert_digest``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from acdc_engine.api import AcdcError, CheckpointReader, CheckpointWriter, file_digest
from .manifest import MANIFEST
from .phases import Phase, quiet

if TYPE_CHECKING:  # torch is imported where it is used, so that the CLI starts fast
    import torch

DELTA = "delta.safetensors"
Factors = dict[str, tuple["torch.Tensor", "torch.Tensor"]]  # weight name -> (A, B with the scaling folded in)


def lora_factors(model) -> Factors:
    """The trained LoRA of a peft ``model``, by the name of the base weight each one adapts."""
    import torch
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    factors = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer) and "default" in module.lora_A:
                a = module.lora_A["default"].weight.detach().float().clone()
                b = (module.lora_B["default"].weight.detach().float() * module.scaling["default"]).contiguous()
                factors[f"{name.removeprefix(prefix)}.weight"] = (a, b)
    return factors


def applied(weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``weight + b @ a`` in ``weight``'s dtype: in float64, one rank-one update at a time in rank order, then
    rounded once; elementwise operations only, so that the result is the same bit for bit everywhere."""
    total = weight.double()
    a, b = a.double(), b.double()
    for k in range(a.shape[0]):
        total += b[:, k:k + 1] * a[k:k + 1, :]
    return total.to(weight.dtype)


def write_expert(base_dir: Path, factors: Factors, out_dir: Path, phase: Phase = quiet) -> None:
    """Writes the expert of ``factors`` into ``out_dir`` in the base's exact safetensors layout (a ``phase``
    counting tensors) and copies the base's other files."""
    with CheckpointReader(base_dir / "model.safetensors") as base:
        layout = {name: (base.dtype(name), base.shape(name)) for name in base.keys()}
        missing = [name for name in factors if name not in layout]
        if missing:
            raise AcdcError(f"expert delta adapts {missing[0]}, which the base {base_dir} does not have")
        writer = CheckpointWriter(out_dir / "model.safetensors", layout, base.metadata or None)
        try:
            with phase("writing the expert", len(layout)) as advance:
                for name in layout:
                    weight = base.tensor(name)
                    writer.write(name, applied(weight, *factors[name]) if name in factors else weight)
                    advance()
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    for f in base_dir.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", MANIFEST, DELTA):
            shutil.copy2(f, out_dir / f.name)


def write_delta(path: Path, factors: Factors, manifest: dict, expert_digest: str) -> None:
    """Writes ``factors`` with the expert's ``manifest`` and weights' digest as a delta file (atomically)."""
    import torch

    tensors = {}
    for name, (a, b) in factors.items():
        tensors[f"{name}.lora_A"], tensors[f"{name}.lora_B"] = a, b
    layout = {name: (torch.float32, list(t.shape)) for name, t in tensors.items()}
    writer = CheckpointWriter(path, layout, {"forge": json.dumps(manifest, sort_keys=True),
                                             "expert_digest": expert_digest})
    try:
        for name, tensor in tensors.items():
            writer.write(name, tensor.float())
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def read_delta(path: Path) -> tuple[Factors, dict, str]:
    """A delta file's factors, the expert's manifest and the digest of the weights it rebuilds."""
    with CheckpointReader(path) as f:
        meta = f.metadata
        if "forge" not in meta or "expert_digest" not in meta:
            raise AcdcError(f"{path} is not an expert delta (no forge manifest in its metadata)")
        names = sorted({key.rsplit(".", 1)[0] for key in f.keys()})
        factors = {name: (f.tensor(f"{name}.lora_A").clone(), f.tensor(f"{name}.lora_B").clone()) for name in names}
    return factors, json.loads(meta["forge"]), meta["expert_digest"]


def rebuild(delta: Path, base_dir: Path, out_dir: Path, phase: Phase = quiet) -> dict:
    """Writes the expert of a delta file over ``base_dir`` into ``out_dir`` (weights, the base's other files,
    the delta and its manifest, dated now) and returns the manifest; raises if the base or the rebuilt weights
    are not the ones the delta was made with."""
    factors, manifest, expert_digest = read_delta(delta)
    if (have := file_digest(base_dir / "model.safetensors")) != manifest["base_digest"]:
        raise AcdcError(f"expert delta {delta.name} was made over a base of digest {manifest['base_digest'][:12]}, "
                        f"not {base_dir} ({have[:12]})")
    write_expert(base_dir, factors, out_dir, phase)
    if (got := file_digest(out_dir / "model.safetensors")) != expert_digest:
        raise AcdcError(f"expert delta {delta.name} rebuilt weights of digest {got[:12]}, not {expert_digest[:12]}")
    shutil.copy2(delta, out_dir / DELTA)
    manifest = {**manifest, "created": time.time(), "rebuilt_from": delta.name}  # installed now: the newest
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest
