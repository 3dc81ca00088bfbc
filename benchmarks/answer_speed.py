"""Speed of evaluation: the default backend against one prompt per generate() call.

Usage: python benchmarks/answer_speed.py [CHECKPOINT_DIR] [--dtype bfloat16|float32] [--families 12] [--more]

Builds the default initial task pool (procedural families, instances from
the sandbox), then answers every instruction with SmolLM2 (the seed
checkpoint) twice: with the default backend (``TransformersBackend``,
automatic batch size, length-sorted batches, early stop) and with a plain
loop of single-prompt ``model.generate()`` calls on the same resident model.
Prints useful tokens/s (tokens up to each answer's end), the speed-up, how
many answers are equal both ways (in bf16 a batch's layout moves rounding), and
the engine's overhead: the share of the default backend's wall time spent
outside the model's forward passes (timed with forward hooks). Also prints
the share of the forward time spent in prefill, and the share of prompt
tokens that are the chat template's shared prefix, to size what prefix
KV-cache reuse could save.

Beside the figure it prints the machine's roofline, measured in the same
run: bf16 matmul FLOP/s (a square 2048 matmul and a decode-shaped one, a
batch of rows times one MLP matrix), memory-copy bandwidth, the model's FLOPs
and bytes per decode step, the two limits on tok/s they give for the batch
(compute: FLOP/s over FLOPs per token; memory: the weights read once per
step plus each sequence's KV cache), and the backend's tok/s as a share of
the lower limit, for 36 and (``--more``) 144 prompts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from acdc_engine.config import SandboxConfig
from acdc_engine.machine import matmul_flops
from acdc_engine.plugins.sandbox.sandbox_plugin import Sandbox
from acdc_engine.plugins.taskgen import acdc_generate_tasks
from acdc_engine.plugins.generation.transformers_backend import TransformersBackend
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
    limits, box = SandboxConfig(), Sandbox()
    try:
        return [i.instruction for s in specs for i in box.acdc_task_instances(task=s, limits=limits)]
    finally:
        box.acdc_unconfigure()


def user(text: str) -> list[dict]:
    """A one-turn conversation."""
    return [{"role": "user", "content": text}]


def single_prompt(backend: TransformersBackend, texts: list[str]) -> tuple[int, list[str]]:
    """Answers one prompt per generate() call; returns useful tokens and the answers."""
    tokens, answers = 0, []
    for text in texts:
        enc = backend.tokenizer(backend._prompt(user(text)), return_tensors="pt")
        with torch.inference_mode():
            out = backend.model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False,
                                         eos_token_id=backend.eos_ids, pad_token_id=backend.tokenizer.pad_token_id)
        row = out[0, enc.input_ids.shape[1]:].tolist()
        end = next((k + 1 for k, t in enumerate(row) if t in backend.eos_ids), len(row))
        tokens += end
        answers.append(backend.tokenizer.decode(row[:end], skip_special_tokens=True))
    return tokens, answers


def copy_bandwidth(mb: int = 512, seconds: float = 1.0) -> float:
    """Measured bytes/s of a large tensor copy (each byte read once and written once)."""
    src = torch.empty(mb * 2**20, dtype=torch.uint8).fill_(1)
    dst = torch.empty_like(src)
    dst.copy_(src)
    reps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        dst.copy_(src)
        reps += 1
    return 2 * src.numel() * reps / (time.perf_counter() - started)


def decode_costs(config, dtype_bytes: int, context: int) -> tuple[float, float, float]:
    """(FLOPs per token, weight bytes per step, KV-cache bytes per sequence and step) of one decode step
    at ``context`` cached positions: every matmul weight (the tied embedding as the output layer) once."""
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    per_layer = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h + 3 * h * inter
    matmul_params = layers * per_layer + config.vocab_size * h
    attention = layers * 2 * 2 * heads * head_dim * context  # q.k and p.v over the cache
    kv_bytes = layers * 2 * kv * head_dim * context * dtype_bytes
    return 2 * matmul_params + attention, matmul_params * dtype_bytes, kv_bytes


def roofline(backend: TransformersBackend, texts: list[str], tok_s: float, batch: int,
             dtype: torch.dtype) -> float:
    """Prints the machine's limits for this model and batch, and ``tok_s`` as a share of the lower one;
    returns the lower limit (tok/s)."""
    config = backend.model.config
    square = matmul_flops(2048, 2048, 2048, dtype)
    decode = matmul_flops(batch, config.hidden_size, config.intermediate_size, dtype)
    bandwidth = copy_bandwidth()
    context = int(sum(len(backend.tokenizer(backend._prompt(user(t))).input_ids) for t in texts) / len(texts)
                  + MAX_NEW / 2)
    flops, weight_bytes, kv_bytes = decode_costs(config, dtype.itemsize, context)
    compute_limit = decode / flops
    memory_limit = batch * bandwidth / (weight_bytes + batch * kv_bytes)
    lower = min(compute_limit, memory_limit)
    print(f"roofline        : bf16 matmul {square / 1e9:.0f} GFLOP/s (2048^3), {decode / 1e9:.0f} GFLOP/s "
          f"({batch}x{config.hidden_size} @ {config.hidden_size}x{config.intermediate_size}); copy "
          f"{bandwidth / 1e9:.1f} GB/s")
    print(f"                  per decode step: {flops / 1e9:.3f} GFLOP per token, {weight_bytes / 1e6:.0f} MB of "
          f"weights, {kv_bytes / 1e6:.1f} MB of KV cache per sequence (context {context})")
    print(f"                  limits at {batch} sequences: compute {compute_limit:.0f} tok/s, memory "
          f"{memory_limit:.0f} tok/s; the backend's {tok_s:.1f} tok/s is {tok_s / lower:.1%} of the lower")
    return lower


def default_backend(backend: TransformersBackend, timer: ForwardTimer, texts: list[str],
                    dtype: str) -> tuple[float, list[str]]:
    """Answers ``texts`` with the default backend; prints useful tok/s, returns it and the answers."""
    timer.reset()
    before = backend.generated_tokens
    t0 = time.perf_counter()
    answers = backend.generate(texts, max_new_tokens=MAX_NEW)
    wall = time.perf_counter() - t0
    tokens = backend.generated_tokens - before
    forward, prefill = timer.total, timer.prefill
    prefix = backend._prompt(user("\x00")).split("\x00")[0]
    prefix_tokens = len(backend.tokenizer(prefix).input_ids)
    prompt_tokens = sum(len(backend.tokenizer(backend._prompt(user(t))).input_ids) for t in texts)
    print(f"{len(texts)} prompts, {dtype}, max_new_tokens {MAX_NEW}, torch threads {torch.get_num_threads()}")
    print(f"default backend : {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tok/s")
    print(f"overhead        : {1 - forward / wall:.1%} of the default backend's wall time outside forward passes")
    print(f"prefill         : {prefill / forward:.1%} of forward time; shared chat prefix "
          f"{prefix_tokens * len(texts) / prompt_tokens:.1%} of prompt tokens ({prefix_tokens} of "
          f"{prompt_tokens / len(texts):.0f} per prompt)", flush=True)
    return tokens / wall, answers


def main() -> None:
    ap = argparse.ArgumentParser()
    default = str(Path("~/.cache/acdc-engine/smollm2-135m-instruct").expanduser())
    ap.add_argument("checkpoint", nargs="?", default=default)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--families", type=int, default=12)
    ap.add_argument("--more", action="store_true", help="Also answer 4x the prompts (144 by default).")
    args = ap.parse_args()
    texts = instructions(args.families)
    backend = TransformersBackend(Path(args.checkpoint), dtype=args.dtype, batch_size=0)
    timer = ForwardTimer(backend.model)
    backend.generate(texts[:2], max_new_tokens=4)  # warm-up

    tok_s, answers = default_backend(backend, timer, texts, args.dtype)
    roofline(backend, texts, tok_s, len(texts), getattr(torch, args.dtype))
    if args.more:
        more = instructions(4 * args.families)
        more_tok_s, _ = default_backend(backend, timer, more, args.dtype)
        roofline(backend, more, more_tok_s, len(more), getattr(torch, args.dtype))

    t0 = time.perf_counter()
    single_tokens, single_answers = single_prompt(backend, texts)
    single_wall = time.perf_counter() - t0
    print(f"single prompt   : {single_tokens} tokens in {single_wall:.1f} s = {single_tokens / single_wall:.1f} tok/s")
    print(f"speed-up        : {tok_s / (single_tokens / single_wall):.2f}x")
    same = sum(a == b for a, b in zip(answers, single_answers))
    print(f"answers         : {same} of {len(texts)} equal to single-prompt generate() in {args.dtype}"
          + (" (the batch layout moves bf16 rounding on near ties)" if args.dtype == "bfloat16" else ""))


if __name__ == "__main__":
    main()
