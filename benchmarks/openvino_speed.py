"""OpenVINO GenAI against the default answering backend, on the same CPU threads (issue 43).

Measures, in one process and one run: useful tokens/s of today's default backend (``TransformersBackend``
in bfloat16, automatic batch size, finished rows leave the batch) and of ``openvino_genai.LLMPipeline``
(plain, its stateful SDPA model; and its continuous-batching scheduler, paged attention) with the
OpenVINO model in float32, bfloat16 (inference precision on float32 weights) and int8 (weight
compression). Every engine runs on ``--threads`` threads (default 1). Prompts are the default initial
pool's instructions (as ``benchmarks/answer_speed.py`` builds them), greedy, ``--max-new`` new tokens. The
reference for equality is transformers' float32 ``model.generate()``, one prompt per call, on the first
``--ref-prompts`` prompts. Prints one table: tok/s, ratio to the default, start-up time (conversion
for OpenVINO, when this run converted), answers equal to the reference (with the differing prompts) and
answers equal to the default backend's.

Environment: ``bash scripts/setup_openvino.sh`` installs the ``openvino`` extra (OpenVINO GenAI 2026.4.1,
prebuilt) into ``.venv`` and makes ``.venv-openvino-export``, where optimum-intel converts checkpoints (it
pins transformers<5.6, the project needs >=5.19). Run::

    bash scripts/setup_openvino.sh
    nice .venv/bin/python benchmarks/openvino_speed.py

The script converts the checkpoint into ``--models`` (default ``~/.cache/acdc-engine/openvino``) where an
export is missing, and says how long that took.

float32 weights with bfloat16 inference precision crash on one thread (see ``CRASH_AT_ONE_THREAD``):
with ``--threads 1`` they are left out unless named in ``--only``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHECKPOINT = Path("~/.cache/acdc-engine/smollm2-135m-instruct").expanduser()
MODELS = Path("~/.cache/acdc-engine/openvino").expanduser()
OPTIMUM_CLI = Path(__file__).resolve().parents[1] / ".venv-openvino-export" / "bin" / "optimum-cli"
# name -> (IR folder, inference precision, KV-cache precision or None for OpenVINO's default, continuous batching)
VARIANTS = {
    "ov fp32 plain": ("fp32", "f32", "f32", False),
    "ov fp32 cb": ("fp32", "f32", "f32", True),
    "ov bf16 plain": ("fp32", "bf16", None, False),
    "ov bf16 cb": ("fp32", "bf16", None, True),
    "ov int8/f32 plain": ("int8", "f32", "f32", False),
    "ov int8/f32 cb": ("int8", "f32", "f32", True),
    "ov int8/bf16 plain": ("int8", "bf16", None, False),
    "ov int8/bf16 cb": ("int8", "bf16", None, True),
}
# float32 weights with bfloat16 inference precision on ONE thread kill the process (SIGFPE, "trap divide error in
# libopenvino_intel_cpu_plugin.so", openvino 2026.4.1, plain and cb alike); on 2 threads they run. int8
# weights with bfloat16 run on one thread. Left out unless named in --only.
CRASH_AT_ONE_THREAD = {"ov bf16 plain", "ov bf16 cb"}


def instructions(n: int) -> list[str]:
    """``n`` instructions of the default initial pool (3 instances per family), as answer_speed.py builds them."""
    from answer_speed import instructions as pool_instructions

    return pool_instructions(-(-n // 3))[:n]


def convert(optimum_cli: str | None, checkpoint: Path, models: Path, fmt: str) -> float | None:
    """Exports ``checkpoint`` to ``models/fmt`` (stateful IR + tokenizer); returns seconds, None when it existed."""
    out = models / fmt
    if (out / "openvino_model.xml").exists():
        return None
    if not Path(optimum_cli).is_file():
        sys.exit(f"{out} is missing and {optimum_cli} is absent: run bash scripts/setup_openvino.sh")
    t0 = time.perf_counter()
    subprocess.run(["nice", optimum_cli, "export", "openvino", "-m", str(checkpoint), "--task",
                    "text-generation-with-past", "--weight-format", fmt, str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - t0


def reference(checkpoint: Path, texts: list[str], max_new: int) -> tuple[list[str], float]:
    """transformers float32, one ``model.generate()`` per prompt: the answers and useful tok/s."""
    from acdc_engine.plugins.generation.transformers_backend import TransformersBackend

    backend = TransformersBackend(checkpoint, dtype="float32", batch_size=0)
    tokens, answers, t0 = 0, [], time.perf_counter()
    for text in texts:
        enc = backend.tokenizer(backend._prompt([{"role": "user", "content": text}]), return_tensors="pt")
        with torch.inference_mode():
            out = backend.model.generate(**enc, max_new_tokens=max_new, do_sample=False, eos_token_id=backend.eos_ids,
                                         pad_token_id=backend.tokenizer.pad_token_id)
        row = out[0, enc.input_ids.shape[1]:].tolist()
        end = next((k + 1 for k, t in enumerate(row) if t in backend.eos_ids), len(row))
        tokens += end
        answers.append(backend.tokenizer.decode(row[:end], skip_special_tokens=True))
    return answers, tokens / (time.perf_counter() - t0)


def transformers_backend(checkpoint: Path, texts: list[str], max_new: int, dtype: str, reps: int):
    """The project's backend (batched generate): (load s, [tok/s per rep], answers of the last rep)."""
    from acdc_engine.plugins.generation.transformers_backend import TransformersBackend

    t0 = time.perf_counter()
    backend = TransformersBackend(checkpoint, dtype=dtype, batch_size=0)
    load = time.perf_counter() - t0
    backend.generate(texts[:2], max_new_tokens=4)  # warm-up
    speeds = []
    for _ in range(reps):
        before, t0 = backend.generated_tokens, time.perf_counter()
        answers = backend.generate(texts, max_new_tokens=max_new)
        speeds.append((backend.generated_tokens - before) / (time.perf_counter() - t0))
    return load, speeds, answers


def genai(models: Path, variant: tuple, texts: list[str], max_new: int, reps: int, threads: int):
    """``LLMPipeline`` on ``threads`` threads: (load s, [tok/s per rep], answers of the last rep).

    Prompts are built and tokenised with the transformers tokenizer (left-padded, as the default backend
    does; openvino_tokenizers gives the same ids) and answers decoded with it, inside the timed span."""
    import openvino as ov
    import openvino_genai as og
    from transformers import AutoTokenizer

    ir, precision, kv, cb = variant
    props = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
    if kv:
        props["KV_CACHE_PRECISION"] = kv
    if cb:
        sched = og.SchedulerConfig()
        sched.cache_size = 1  # GB of paged KV cache: 36 answers of ~200 positions need ~0.3 GB in f32
        sched.max_num_seqs = 64
        sched.enable_prefix_caching = True  # the chat template's shared system prompt, as the default backend reuses it
        props["scheduler_config"] = sched
    else:
        props["ATTENTION_BACKEND"] = "SDPA"  # the stateful model, one padded batch
    t0 = time.perf_counter()
    pipe = og.LLMPipeline(str(models / ir), "CPU", **props)
    load = time.perf_counter() - t0
    tok = AutoTokenizer.from_pretrained(models / ir)
    tok.padding_side = "left"
    config = pipe.get_generation_config()
    config.do_sample, config.apply_chat_template = False, False

    def run(batch: list[str], n: int) -> tuple[int, list[str]]:
        config.max_new_tokens = n
        prompts = [tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                           add_generation_prompt=True) for t in batch]
        enc = tok(prompts, return_tensors="np", padding=True)
        out = pipe.generate(og.TokenizedInputs(ov.Tensor(enc.input_ids), ov.Tensor(enc.attention_mask)), config)
        return sum(map(len, out.tokens)), [tok.decode(t, skip_special_tokens=True) for t in out.tokens]

    run(texts[:2], 4)  # warm-up
    speeds = []
    for _ in range(reps):
        t0 = time.perf_counter()
        tokens, answers = run(texts, max_new)
        speeds.append(tokens / (time.perf_counter() - t0))
    del pipe
    return load, speeds, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    ap.add_argument("--models", type=Path, default=MODELS, help="Folder of the OpenVINO exports.")
    ap.add_argument("--optimum-cli", default=str(OPTIMUM_CLI),
                    help="optimum-cli of an optimum-intel environment, to convert missing exports.")
    ap.add_argument("--prompts", type=int, default=36)
    ap.add_argument("--ref-prompts", type=int, default=36, help="Prompts answered by the float32 reference.")
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--reps", type=int, default=2, help="Timed repetitions per engine (the best is shown).")
    ap.add_argument("--only", help="Comma-separated OpenVINO variants to run (default: all).")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of every engine.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    import openvino
    import openvino_genai
    import transformers

    transformers.utils.logging.disable_progress_bar()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"openvino {openvino.__version__}, openvino_genai {openvino_genai.__version__}; load "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    texts = instructions(args.prompts)
    conversions = {fmt: convert(args.optimum_cli, args.checkpoint, args.models, fmt) for fmt in ("fp32", "int8")}
    for fmt, seconds in conversions.items():
        print(f"conversion {fmt}: " + (f"{seconds:.1f} s" if seconds is not None else "existed"), flush=True)

    ref, ref_speed = reference(args.checkpoint, texts[:args.ref_prompts], args.max_new)
    print(f"reference fp32 generate(), one prompt per call: {ref_speed:.1f} tok/s on {len(ref)} prompts", flush=True)

    rows = []  # (name, load, speeds, answers, startup note)
    for dtype, reps in (("bfloat16", args.reps), ("float32", 1)):  # float32: one rep, to keep the run short
        load, speeds, answers = transformers_backend(args.checkpoint, texts, args.max_new, dtype, reps)
        rows.append((f"transformers {dtype} (backend)", speeds, answers, f"{load:.1f} s load"))
        print(f"{rows[-1][0]}: {', '.join(f'{s:.1f}' for s in speeds)} tok/s", flush=True)
    chosen = args.only.split(",") if args.only else [v for v in VARIANTS
                                                      if args.threads > 1 or v not in CRASH_AT_ONE_THREAD]
    for name in chosen:
        variant = VARIANTS[name]
        load, speeds, answers = genai(args.models, variant, texts, args.max_new, args.reps, args.threads)
        seconds = conversions[variant[0]]
        note = f"{load:.1f} s load" + (f" + {seconds:.1f} s conversion" if seconds is not None else "")
        rows.append((name, speeds, answers, note))
        print(f"{name}: {', '.join(f'{s:.1f}' for s in speeds)} tok/s", flush=True)

    default = max(rows[0][1])
    n = len(ref)
    print(f"\n{len(texts)} prompts, greedy, {args.max_new} new tokens, {args.threads} threads; equality against "
          f"transformers fp32 generate() on the first {n}; end load {os.getloadavg()[0]:.2f}")
    print("| engine | tok/s (best of reps) | reps | ratio to default | start-up | equal to fp32 generate() "
          "| differing prompts | equal to the default's |")
    print("|---|---|---|---|---|---|---|---|")
    for name, speeds, answers, note in rows:
        diff = [i for i in range(n) if answers[i] != ref[i]]
        same = sum(a == b for a, b in zip(answers, rows[0][2]))
        reps = " / ".join(f"{s:.1f}" for s in speeds)
        print(f"| {name} | {max(speeds):.1f} | {reps} | {max(speeds) / default:.2f}x | {note} | {n - len(diff)}/{n} "
              f"| {', '.join(map(str, diff)) or '-'} | {same}/{len(answers)} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\nwall {time.perf_counter() - started:.0f} s; peak RSS {rss:.2f} GiB")


if __name__ == "__main__":
    main()
