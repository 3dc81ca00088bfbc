"""Built-in plugin ``openvino`` (always on; needs the extra ``acdc-engine[openvino]``): OpenVINO GenAI
with continuous batching, chosen with ``generation.backend = "openvino"`` or, where it pays,
``generation.answer_backend = "openvino"`` (outside-benchmark answering).

Each checkpoint it is asked to answer with is converted once into OpenVINO's
form by optimum-intel (``load_weights``: about 20 s for SmolLM2 on 2 cores),
in a separate environment (``.venv-openvino-export``, made by
``scripts/setup_openvino.sh``: optimum-intel pins an older transformers than
the project's). The converted model answers through ``openvino_genai``'s
continuous-batching scheduler (a paged KV cache; a finished answer's row takes
the next prompt at once).

Prompts are built and tokenised exactly as the ``transformers`` backend builds
them. With ``[openvino] precision = "f32"`` (the default) greedy answers equal
the ``transformers`` backend's in float32 but for rare near-ties (577 of 580
answers of the default pool, docs/performance.md); ``"bf16"`` is faster and
changes answers as the default's bf16 does. Its speed-up over the default
grows with the answers' length and number (1.1x at 400 answers of 48 tokens,
2.2x at 400 of 128; bf16 2.3x and 5.1x), and each checkpoint costs a
conversion, so it pays where one model answers many long prompts (``acdc-engine
evaluate --answer-backend openvino``), not for a run's children. Sampled
answers are draws of the same distribution, not the same draws. No
log-probability path is offered: multiple choice by likelihood and
``evaluate --lm-eval`` keep the run's backend.

Where the extra or the export environment is missing, only choosing this
backend fails, with a one-line error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from acdc_engine.api import AcdcError, CheckpointReader, PluginSection, hookimpl
from .transformers_backend import end_token_ids

NAME = "openvino"
CHUNK = 128  # prompts per generate call: progress is told after each
TOP_P = 0.95  # as the transformers backend samples
SETUP = "bash scripts/setup_openvino.sh"


class OpenVinoSection(PluginSection):
    """Settings of the ``openvino`` generation backend."""

    precision: Literal["f32", "bf16"] = Field(
        "f32", description="Inference precision: f32 gives the transformers backend's float32 greedy answers; "
        "bf16 is faster and changes answers (it needs 2 or more threads: on one, OpenVINO 2026.4.1 kills the "
        "process).")
    threads: int = Field(0, ge=0, description="Inference threads (0: every CPU this process may use).")
    kv_cache_gb: int = Field(1, ge=1, description="Size of the paged KV cache, in GB.")
    max_num_seqs: int = Field(64, ge=1, description="Answers decoded together by the continuous-batching "
                              "scheduler.")
    optimum_cli: str = Field("", description="optimum-cli of the export environment; empty: "
                             ".venv-openvino-export/bin/optimum-cli beside this Python's environment.")


@hookimpl
def acdc_config_sections():
    return {NAME: OpenVinoSection}


def _import():
    try:
        import openvino
        import openvino_genai
    except ImportError as exc:
        raise AcdcError(f"generation backend 'openvino' needs the openvino extra ({exc.name} is missing): "
                        f"{SETUP}") from None
    return openvino, openvino_genai


def default_optimum_cli() -> Path:
    """The export environment's optimum-cli, beside this Python's environment (``.venv``)."""
    return Path(sys.prefix).parent / ".venv-openvino-export" / "bin" / "optimum-cli"


def convert(model_dir: Path, weights_file: Path, out: Path, optimum_cli: Path) -> None:
    """Exports ``model_dir``'s architecture and tokenizer with ``weights_file``'s tensors to ``out``
    (stateful OpenVINO model and tokenizer, float32 weights)."""
    if not optimum_cli.is_file():
        raise AcdcError(f"generation backend 'openvino' converts with {optimum_cli}, which is missing: {SETUP}")
    src = out.with_name(out.name + ".src")
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for f in model_dir.iterdir():  # the seed's config and tokenizer; the candidate's weights
        if f.is_file() and not f.name.startswith("model.safetensors"):
            (src / f.name).symlink_to(f.resolve())
    (src / "model.safetensors").symlink_to(weights_file.resolve())
    done = subprocess.run([str(optimum_cli), "export", "openvino", "-m", str(src), "--task",
                           "text-generation-with-past", "--weight-format", "fp32", str(out)],
                          capture_output=True, text=True)
    shutil.rmtree(src, ignore_errors=True)
    if done.returncode != 0 or not (out / "openvino_model.xml").is_file():
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise AcdcError(f"openvino cannot convert {weights_file}: {lines[-1] if lines else 'no model written'}")


def check_shapes(seed_file: Path, weights_file: Path) -> None:
    """Fails with a one-line error unless ``weights_file`` holds the seed checkpoint's tensors and shapes."""
    with CheckpointReader(seed_file) as seed, CheckpointReader(weights_file) as f:
        want = {name: tuple(seed.shape(name)) for name in seed.keys()}
        for name in f.keys():
            if name not in want:
                raise AcdcError(f"weights {weights_file}: tensor {name} is not in the seed's model")
            if tuple(f.shape(name)) != want[name]:
                raise AcdcError(f"weights {weights_file}: tensor {name} has shape {tuple(f.shape(name))}, "
                                f"the seed's is {want[name]}")


class OpenVinoBackend:
    """An OpenVINO GenAI continuous-batching pipeline, rebuilt from each checkpoint it is asked to load."""

    def __init__(self, model_dir: Path, *, precision: str = "f32", threads: int = 0, kv_cache_gb: int = 1,
                 max_num_seqs: int = 64, optimum_cli: Path | None = None) -> None:
        from transformers import AutoTokenizer

        _import()
        self.threads = threads or len(os.sched_getaffinity(0))
        if precision == "bf16" and self.threads < 2:
            raise AcdcError("openvino.precision = 'bf16' needs 2 or more threads (on one, OpenVINO 2026.4.1 "
                            "kills the process): set openvino.threads or use precision 'f32'")
        self.model_dir, self.compute_type = Path(model_dir), precision  # named as ctranslate2's: the answers' precision
        self.kv_cache_gb, self.max_num_seqs = kv_cache_gb, max_num_seqs
        self.optimum_cli = Path(optimum_cli) if optimum_cli else default_optimum_cli()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        self.end_ids = end_token_ids(model_dir, self.tokenizer)
        self.generated_tokens = 0
        self.scratch = Path(tempfile.mkdtemp(prefix="acdc-openvino-"))
        self.pipe = None
        self.loaded: Path | None = None
        self.load_weights(self.model_dir / "model.safetensors")

    def load_weights(self, weights_file: Path) -> None:
        """Converts ``weights_file`` (the seed's architecture) and starts a pipeline on it."""
        weights_file = Path(weights_file)
        if self.loaded == weights_file.resolve():
            return
        check_shapes(self.model_dir / "model.safetensors", weights_file)
        _, og = _import()
        self.pipe, self.loaded = None, None
        target = self.scratch / "converted"
        shutil.rmtree(target, ignore_errors=True)
        convert(self.model_dir, weights_file, target, self.optimum_cli)
        sched = og.SchedulerConfig()
        sched.cache_size = self.kv_cache_gb
        sched.max_num_seqs = self.max_num_seqs
        sched.enable_prefix_caching = True  # the chat template's shared opening
        props = {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": self.compute_type,
                 "scheduler_config": sched}
        if self.compute_type == "f32":
            props["KV_CACHE_PRECISION"] = "f32"  # exact answers need the cache in float32 too
        try:
            self.pipe = og.LLMPipeline(str(target), "CPU", **props)
        except RuntimeError as exc:
            raise AcdcError(f"openvino cannot load the converted {weights_file}: {str(exc).splitlines()[0]}") from None
        self.loaded = weights_file.resolve()

    def generate(self, instructions, *, max_new_tokens, on_batch=None, temperature=0.0, seed=None):
        """Answers single-turn instructions: greedy by default; sampled at ``temperature`` (> 0) from ``seed``."""
        return self.chat([[{"role": "user", "content": i}] for i in instructions], max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed or 0, on_batch=on_batch)

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, seed=0, on_batch=None):
        """The next assistant turn of each conversation (lists of role/content dicts)."""
        texts = [self.tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                 for m in conversations]
        return self._answer(texts, max_new_tokens, temperature, seed, on_batch)

    def _answer(self, texts: list[str], max_new_tokens: int, temperature: float, seed: int,
                on_batch) -> list[str]:
        ov, og = _import()
        config = self.pipe.get_generation_config()
        config.apply_chat_template = False  # the prompts are templated here, as the transformers backend does
        config.max_new_tokens = max_new_tokens
        config.stop_token_ids = set(self.end_ids)
        config.do_sample = temperature > 0
        if temperature > 0:
            config.temperature, config.top_p, config.top_k, config.rng_seed = temperature, TOP_P, 0, seed
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # alike lengths pad little
        answers = [""] * len(texts)
        for start in range(0, len(order), CHUNK):
            idx = order[start:start + CHUNK]
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="np", padding=True)
            out = self.pipe.generate(og.TokenizedInputs(ov.Tensor(enc.input_ids), ov.Tensor(enc.attention_mask)),
                                     config)
            for i, ids in zip(idx, out.tokens):
                ids = list(ids)
                end = next((k for k, t in enumerate(ids) if t in self.end_ids), None)
                # the end token counts, as in transformers
                self.generated_tokens += len(ids) if end is None else end + 1
                answers[i] = self.tokenizer.decode(ids if end is None else ids[:end], skip_special_tokens=True)
            if on_batch:
                on_batch(len(idx))
        return answers

    def close(self) -> None:
        self.pipe = None
        shutil.rmtree(self.scratch, ignore_errors=True)


@hookimpl
def acdc_make_backend(config, model_dir):
    if config.generation.backend != NAME:
        return None
    section = config.section(NAME)
    return OpenVinoBackend(model_dir, precision=section.precision, threads=section.threads,
                           kv_cache_gb=section.kv_cache_gb, max_num_seqs=section.max_num_seqs,
                           optimum_cli=Path(section.optimum_cli).expanduser() if section.optimum_cli else None)
