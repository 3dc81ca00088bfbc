"""Protected directions: an adapted layer's weight change kept off the input directions that carry most of
the other capabilities' replayed texts' energy, so the expert keeps what the base did there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .data import pad_batch
from .phases import Phase, quiet

if TYPE_CHECKING:  # torch is imported where it is used, so that the CLI starts fast
    import torch


def protected_subspaces(model, encoded: list[tuple[list[int], list[int]]], energy: float, pad_id: int, *,
                         bf16: bool, batch_size: int = 16, phase: Phase = quiet) -> dict[str, torch.Tensor]:
    """For each adapted layer, an orthonormal basis (columns) of the input directions that carry
    ``energy`` of its inputs' energy over ``encoded``'s tokens, prompt and reply, every token of
    every text counted (the chat template's system turn too, as often as it is seen: counted once,
    it made a much weaker strings expert; docs/performance.md). Two phases: the base's inputs to
    the layers over the texts ("reading texts to protect", counted in texts), then each distinct input's
    eigenvectors ("directions to protect", counted in layers)."""
    import torch
    from peft.tuners.lora import LoraLayer

    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    grams: dict[str, torch.Tensor] = {}
    same_input: dict[str, str] = {}  # a layer fed the tensor an earlier one is (q, k, v; gate, up) -> that one
    counted: list[torch.Tensor] = []  # the current batch's token positions that count
    last: list = [None, None]  # the input tensor the previous layer was fed, and that layer

    def accumulate(name):
        def hook(_module, args, _output):
            if args[0] is last[0]:
                same_input[name] = last[1]
                return
            last[:] = [args[0], name]
            x = args[0][counted[0]].float()
            grams[name] = grams.get(name, 0) + (x.T @ x).double()
        return hook

    encoded = sorted(encoded, key=lambda e: len(e[0]))  # batches of like lengths: little padding
    decoder = model.get_base_model().model  # the layers without the output head
    handles = [m.base_layer.register_forward_hook(accumulate(name)) for name, m in layers.items()]
    try:
        with phase("reading texts to protect", len(encoded)) as advance, \
                torch.no_grad(), model.disable_adapter(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(encoded), batch_size):
                batch = pad_batch(encoded[start:start + batch_size], pad_id)
                counted[:] = [batch["attention_mask"].bool()]
                decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                advance(len(batch["input_ids"]))
    finally:
        for handle in handles:
            handle.remove()
    bases = {}
    with phase("directions to protect", len(grams)) as advance:
        for name, gram in grams.items():
            values, vectors = torch.linalg.eigh(gram.float())
            values, vectors = values.flip(0).clamp(min=0).double(), vectors.flip(1)
            kept = int(torch.searchsorted(values.cumsum(0) / values.sum(),
                                          torch.tensor(energy, dtype=values.dtype))) + 1
            bases[name] = vectors[:, :kept].contiguous()
            advance()
    return {name: bases[same_input.get(name, name)] for name in layers}



def project_out(model, bases: dict[str, torch.Tensor]) -> None:
    """Removes from every LoRA ``A`` the protected input directions, so that the adapters' weight
    change maps them to zero."""
    import torch

    with torch.no_grad():
        for name, m in model.named_modules():
            if name in bases:
                a = m.lora_A["default"].weight
                a -= (a @ bases[name]) @ bases[name].T

