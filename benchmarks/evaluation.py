"""Speed of evaluation: the default backend against one prompt per generate() call.

Usage: python benchmarks/evaluation.py [CHECKPOINT_DIR] [--dtype bfloat16|float32] [--families 12]

Builds the default initial task pool (procedural families, instances from
the sandbox), then answers every instruction with SmolLM2 (the seed
checkpoint) twice: with the default backend (``TransformersBackend``,
automatic batch size, length-sorted batches, early stop) and with a plain
loop of single-prompt ``model.generate()`` calls on the same resident model.
Prints useful tokens/s (tokens up to each answer's end) and the speed-up, and
the engine's overhead: the share of the default backend's wall time spent
outside the model's forward passes (timed with forward hooks). Also prints
the share of the forward time spent in prefill, and the share of prompt
tokens that are the chat template's shared prefix, to size what prefix
KV-cache reuse could save.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from acdc_engine.config import SandboxConfig
from acdc_engine.plugins import sandbox
from acdc_engine.plugins.taskgen import acdc_generate_tasks
from acdc_engine.plugins.transformers_backend import TransformersBackend
from acdc_engine.tasks import TaskRequest

MAX_NEW = 48


class ForwardTimer:
    """Sums the wall time of the model's forward passes, prefill (more than one position) apart."""

    def __init__(self, model) -> None:
        self.total = self.prefill = 0.0
        self._t = 0.0
        model.register_forward_pre_hook(self._pre, with_kwargs=True)
        model.register_forward_hook(self._post, with_kwargs=True)

    def _pre(self, module, args, kwargs):
        self._t = time.perf_counter()

    def _post(self, module, args, kwargs, output):
        dt = time.perf_counter() - self._t
        self.total += dt
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[-1] > 1:
            self.prefill += dt

    def reset(self) -> None:
        self.total = self.prefill = 0.0


def instructions(n_families: int) -> list[str]:
    specs = acdc_generate_tasks(TaskRequest(mode="initial", n=n_families, seed=0, instances=3))
    limits = SandboxConfig()
    try:
        return [i.instruction for s in specs for i in sandbox.acdc_task_instances(task=s, limits=limits)]
    finally:
        sandbox.acdc_unconfigure()


def user(text: str) -> list[dict]:
    """A one-turn conversation."""
    return [{"role": "user", "content": text}]


def single_prompt(backend: TransformersBackend, texts: list[str]) -> int:
    """Answers one prompt per generate() call; returns useful tokens."""
    tokens = 0
    for text in texts:
        enc = backend.tokenizer(backend._prompt(user(text)), return_tensors="pt")
        with torch.inference_mode():
            out = backend.model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False,
                                         eos_token_id=backend.eos_ids, pad_token_id=backend.tokenizer.pad_token_id)
        row = out[0, enc.input_ids.shape[1]:].tolist()
        tokens += next((k + 1 for k, t in enumerate(row) if t in backend.eos_ids), len(row))
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    default = str(Path("~/.cache/acdc-engine/smollm2-135m-instruct").expanduser())
    ap.add_argument("checkpoint", nargs="?", default=default)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--families", type=int, default=12)
    args = ap.parse_args()
    texts = instructions(args.families)
    backend = TransformersBackend(Path(args.checkpoint), dtype=args.dtype, batch_size=0)
    timer = ForwardTimer(backend.model)
    backend.generate(texts[:2], max_new_tokens=4)  # warm-up

    timer.reset()
    before = backend.generated_tokens
    t0 = time.perf_counter()
    backend.generate(texts, max_new_tokens=MAX_NEW)
    wall = time.perf_counter() - t0
    tokens = backend.generated_tokens - before
    forward, prefill = timer.total, timer.prefill
    prefix = backend._prompt(user("\x00")).split("\x00")[0]
    prefix_tokens = len(backend.tokenizer(prefix).input_ids)
    prompt_tokens = sum(len(backend.tokenizer(backend._prompt(user(t))).input_ids) for t in texts)
    print(f"{len(texts)} prompts, {args.dtype}, max_new_tokens {MAX_NEW}, torch threads {torch.get_num_threads()}")
    print(f"default backend : {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tok/s")
    print(f"overhead        : {1 - forward / wall:.1%} of the default backend's wall time outside forward passes")
    print(f"prefill         : {prefill / forward:.1%} of forward time; shared chat prefix "
          f"{prefix_tokens * len(texts) / prompt_tokens:.1%} of prompt tokens ({prefix_tokens} of "
          f"{prompt_tokens / len(texts):.0f} per prompt)", flush=True)

    t0 = time.perf_counter()
    single_tokens = single_prompt(backend, texts)
    single_wall = time.perf_counter() - t0
    print(f"single prompt   : {single_tokens} tokens in {single_wall:.1f} s = {single_tokens / single_wall:.1f} tok/s")
    print(f"speed-up        : {(tokens / wall) / (single_tokens / single_wall):.2f}x")


if __name__ == "__main__":
    main()
