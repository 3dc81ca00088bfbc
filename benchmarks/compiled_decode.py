"""A tried direction for the default backend: a static KV cache and a compiled decode step.

Usage: python benchmarks/compiled_decode.py [CHECKPOINT_DIR] [--families 12] [--reps 3]

Answers the default initial pool's prompts (as ``benchmarks/answer_speed.py``
does) three ways on one resident SmolLM2, alternating, ``--reps`` times:

- the default backend (``TransformersBackend``: a dynamic KV cache whose
  finished rows leave the batch, the shared chat prefix run once);
- a static KV cache (transformers' ``StaticCache``, fixed shapes) with the
  decode step run eagerly; finished rows leave the batch only when the live
  rows fit a smaller size of ``BUCKETS`` (so a compiled step sees few shapes);
- the same with the decode step compiled by ``torch.compile`` (inductor).

Prints the compilation's cost (the first call; inductor caches its graphs on
disk, so a second process pays less), tok/s of each way and each rep, and
how many bf16 answers equal the default backend's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import StaticCache

from acdc_engine.plugins.generation.transformers_backend import TransformersBackend
from answer_speed import MAX_NEW, instructions, user

BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 144)


@torch.inference_mode()
def static_answers(backend: TransformersBackend, batch: list[list[int]], step) -> tuple[int, list[str]]:
    """Greedy answers with a static cache; ``step`` is the decode forward (eager or compiled)."""
    model, n = backend.model, len(batch)
    enc = backend.tokenizer.pad({"input_ids": batch}, return_tensors="pt", padding=True)
    width = enc.input_ids.shape[1]
    cache = StaticCache(config=model.config, max_cache_len=width + MAX_NEW)
    mask = torch.cat([enc.attention_mask, enc.attention_mask.new_zeros(n, MAX_NEW)], dim=1)
    position = enc.attention_mask.cumsum(-1) - 1
    position.masked_fill_(enc.attention_mask == 0, 1)
    logits = model(input_ids=enc.input_ids, attention_mask=mask[:, :width], position_ids=position,
                   logits_to_keep=1, cache=cache).logits[:, -1]
    position = position[:, -1]
    live, tokens = list(range(n)), [[] for _ in batch]
    for k in range(MAX_NEW):
        nxt = logits.argmax(-1)
        for row, token in zip(live, nxt.tolist()):
            if not tokens[row] or tokens[row][-1] not in backend.eos_ids:
                tokens[row].append(token)
        keep = [i for i, row in enumerate(live) if tokens[row][-1] not in backend.eos_ids]
        if not keep or k == MAX_NEW - 1:
            break
        size = next(s for s in BUCKETS if s >= len(keep))
        if size < len(live):  # the live rows, padded to the bucket with finished ones
            rows = keep + [i for i in range(len(live)) if i not in keep][: size - len(keep)]
            picked = torch.tensor(rows)
            for layer in cache.layers:
                layer.keys, layer.values, layer.batch_size = layer.keys[picked], layer.values[picked], size
            mask, nxt, position, live = mask[picked], nxt[picked], position[picked], [live[i] for i in rows]
        mask[:, width] = 1
        width += 1
        position = position + 1
        logits = step(input_ids=nxt[:, None], attention_mask=mask, position_ids=position[:, None],
                      cache=cache).logits[:, -1]
    return sum(map(len, tokens)), [backend.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", nargs="?", default=str(Path("~/.cache/acdc-engine/smollm2-135m-instruct").expanduser()))
    ap.add_argument("--families", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    texts = instructions(args.families)
    backend = TransformersBackend(Path(args.checkpoint), dtype="bfloat16", batch_size=0)
    ids = backend.tokenizer([backend._prompt(user(t)) for t in texts]).input_ids
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batch = [ids[i] for i in order]
    compiled = torch.compile(backend.model.forward, dynamic=False)

    def default() -> tuple[int, list[str]]:
        before = backend.generated_tokens
        out = backend.generate([texts[i] for i in order], max_new_tokens=MAX_NEW)
        return backend.generated_tokens - before, out

    ways = {"default backend": default, "static cache, eager": lambda: static_answers(backend, batch, backend.model),
            "static cache, compiled": lambda: static_answers(backend, batch, compiled)}
    default()  # warm-up
    started = time.perf_counter()
    ways["static cache, compiled"]()
    print(f"{len(texts)} prompts, bfloat16, max_new_tokens {MAX_NEW}, torch threads {torch.get_num_threads()}")
    print(f"compilation (first call, every bucket size it met): {time.perf_counter() - started:.1f} s", flush=True)
    answers: dict[str, list[str]] = {}
    for rep in range(args.reps):
        for name, way in ways.items():
            t0 = time.perf_counter()
            tokens, answers[name] = way()
            wall = time.perf_counter() - t0
            print(f"rep {rep + 1} {name:<24}: {tokens} tokens in {wall:.2f} s = {tokens / wall:.1f} tok/s", flush=True)
    for name in list(ways)[1:]:
        same = sum(a == b for a, b in zip(answers[name], answers["default backend"]))
        print(f"{name}: {same} of {len(texts)} answers equal to the default backend's (bf16)")


if __name__ == "__main__":
    main()
