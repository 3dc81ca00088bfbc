"""Built-in plugin ``ctranslate2`` (always on): a compiled CPU backend, chosen with
``generation.backend = "ctranslate2"``.

CTranslate2 runs a converted copy of the model in its own C++ engine. Each
checkpoint it is asked to answer with is converted once (``load_weights``:
8-9 s for SmolLM2 on 2 quiet cores). It is not a default: on this project's
2-core machine with AMX it ran at 0.32x the ``transformers`` backend's bf16
speed at 400 prompts, and at 0.60x its float32 speed; it held its speed far
better than that backend beside other CPU-heavy processes
(``benchmarks/backends.py``, docs/performance.md).

Prompts are built exactly as the ``transformers`` backend builds them (the same
tokenizer and chat template), and decoding is greedy unless a temperature is
given (then temperature and top-p 0.95, seeded). In ``float32`` (the default
``[ctranslate2] compute_type``) greedy answers equal the ``transformers``
backend's in float32; ``int8_float32`` is faster and changes answers.
Sampled answers are draws of the same distribution but not the same draws.
``reply_logprobs`` and ``mean_logprob`` score given replies; raw-text
``continuation_logprobs`` (lm-eval's loglikelihood requests) is not offered:
use the ``transformers`` backend for ``evaluate --lm-eval``.

CTranslate2 (``ctranslate2==4.8.5``) is installed by the project's set-up; where
it is missing, only choosing this backend fails, with a one-line error.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from acdc_engine.api import AcdcError, CheckpointReader, PluginSection, hookimpl
from .transformers_backend import end_token_ids

NAME = "ctranslate2"
CHUNK = 64  # prompts per generate_batch call: progress is told after each
TOP_P = 0.95  # as the transformers backend samples


class CTranslate2Section(PluginSection):
    """Settings of the ``ctranslate2`` generation backend."""

    compute_type: Literal["float32", "int8_float32", "int8", "bfloat16", "int8_bfloat16"] = Field(
        "float32", description="Precision of the converted model: float32 gives the transformers backend's greedy "
        "answers; the int8 types are faster and change answers; bfloat16 needs a CPU build that offers it.")
    threads: int = Field(0, ge=0, description="Threads per batch (0: every CPU this process may use).")
    max_batch_size: int = Field(32, ge=1, description="Prompts decoded together.")


@hookimpl
def acdc_config_sections():
    return {NAME: CTranslate2Section}


def _import():
    try:
        import ctranslate2
    except ImportError:
        raise AcdcError("generation.backend = 'ctranslate2' needs the ctranslate2 package "
                        "(pip install ctranslate2==4.8.5; scripts/setup.sh installs it)") from None
    return ctranslate2


def _resident_converter():
    """CTranslate2's converter for Hugging Face checkpoints, made to convert a model already in memory."""
    ct2 = _import()

    class ResidentConverter(ct2.converters.TransformersConverter):
        def __init__(self, model_dir: Path, model, tokenizer) -> None:
            super().__init__(str(model_dir))
            self.model, self.tokenizer = model, tokenizer

        def load_model(self, model_class, model_name_or_path, **kwargs):
            return copy.deepcopy(self.model)  # the converter takes the model apart as it reads it

        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            return self.tokenizer

    return ResidentConverter


class CTranslate2Backend:
    """A CTranslate2 generator, rebuilt from each checkpoint it is asked to load."""

    def __init__(self, model_dir: Path, *, compute_type: str = "float32", threads: int = 0,
                 max_batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        ct2 = _import()
        supported = ct2.get_supported_compute_types("cpu")
        if compute_type not in supported:
            raise AcdcError(f"ctranslate2.compute_type = {compute_type!r} is not offered on this CPU "
                            f"(offered: {', '.join(sorted(supported))})")
        self.model_dir, self.compute_type = Path(model_dir), compute_type
        self.threads = threads or len(os.sched_getaffinity(0))
        self.max_batch_size = max_batch_size
        self.generated_tokens = 0
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.end_tokens = self.tokenizer.convert_ids_to_tokens(end_token_ids(model_dir, self.tokenizer))
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self._params = dict(self.model.state_dict())
        self.scratch = Path(tempfile.mkdtemp(prefix="acdc-ct2-"))
        self.generator = None
        self.loaded: Path | None = None
        self.load_weights(self.model_dir / "model.safetensors")

    def load_weights(self, weights_file: Path) -> None:
        """Copies ``weights_file``'s tensors into the resident float32 model (the seed's architecture) and
        converts that model into a new generator."""
        weights_file = Path(weights_file)
        if self.loaded == weights_file.resolve():
            return
        import torch

        with CheckpointReader(weights_file) as f, torch.no_grad():
            for name in f.keys():
                mine = self._params.get(name)
                if mine is None:
                    raise AcdcError(f"weights {weights_file}: tensor {name} is not in the resident model")
                if tuple(f.shape(name)) != tuple(mine.shape):
                    raise AcdcError(f"weights {weights_file}: tensor {name} has shape {tuple(f.shape(name))}, "
                                    f"the resident model's is {tuple(mine.shape)}")
                mine.copy_(f.tensor(name))
        self.generator = None
        self.loaded = None
        target = self.scratch / "converted"
        try:
            _resident_converter()(self.model_dir, self.model, self.tokenizer).convert(
                str(target), quantization=self.compute_type, force=True)
        except (ValueError, NotImplementedError, OSError) as exc:
            raise AcdcError(f"ctranslate2 cannot convert {weights_file}: {str(exc).splitlines()[0]}") from None
        self.generator = self._new_generator()
        self.loaded = weights_file.resolve()

    def _new_generator(self):
        """A generator on the converted model; its worker thread seeds its sampler from the seed set last."""
        return _import().Generator(str(self.scratch / "converted"), device="cpu", compute_type=self.compute_type,
                                   intra_threads=self.threads)

    def _prompt_tokens(self, messages: list[dict]) -> list[str]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer.convert_ids_to_tokens(self.tokenizer(text).input_ids)

    def generate(self, instructions, *, max_new_tokens, on_batch=None, temperature=0.0, seed=None):
        """Answers single-turn instructions: greedy by default; sampled at ``temperature`` (> 0) from ``seed``."""
        return self.chat([[{"role": "user", "content": i}] for i in instructions], max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed or 0, on_batch=on_batch)

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, seed=0, on_batch=None):
        """The next assistant turn of each conversation (lists of role/content dicts)."""
        return self._answer([self._prompt_tokens(m) for m in conversations], max_new_tokens, temperature, seed,
                            on_batch)

    def complete(self, texts, *, max_new_tokens, stop=(), temperature=0.0, seed=None):
        """Raw-text continuation of each text (no chat template), cut before the first ``stop`` string."""
        tokens = [self.tokenizer.convert_ids_to_tokens(self.tokenizer(t, add_special_tokens=False).input_ids)
                  for t in texts]
        out = self._answer(tokens, max_new_tokens, temperature, seed or 0, None)
        return [min((t[:t.index(s)] for s in stop if s in t), key=len, default=t) for t in out]

    def _answer(self, prompts: list[list[str]], max_new_tokens: int, temperature: float, seed: int,
                on_batch) -> list[str]:
        ct2 = _import()
        if temperature > 0:  # the sampler lives in the generator's thread and is seeded when it starts
            ct2.set_random_seed(seed)
            self.generator = self._new_generator()
            sampling = {"sampling_topk": 0, "sampling_topp": TOP_P, "sampling_temperature": temperature}
        else:
            sampling = {"sampling_topk": 1}
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # alike lengths decode together
        answers = [""] * len(prompts)
        for start in range(0, len(order), CHUNK):
            idx = order[start:start + CHUNK]
            results = self.generator.generate_batch(
                [prompts[i] for i in idx], max_length=max_new_tokens, include_prompt_in_result=False,
                end_token=self.end_tokens, max_batch_size=self.max_batch_size, **sampling)
            for i, result in zip(idx, results):
                ids = result.sequences_ids[0]
                self.generated_tokens += len(ids) + (len(ids) < max_new_tokens)  # the end token counts, as in transformers
                answers[i] = self.tokenizer.decode(ids, skip_special_tokens=True)
            if on_batch:
                on_batch(len(idx))
        return answers

    def _scores(self, prompt: list[int], replies: list[list[int]]) -> list[list[float]]:
        """Each reply token's log-probability after ``prompt`` and the reply's earlier tokens."""
        tokens = [self.tokenizer.convert_ids_to_tokens(prompt + r) for r in replies]
        results = self.generator.score_batch(tokens, max_batch_size=self.max_batch_size)
        return [list(res.log_probs[len(res.log_probs) - len(r):]) for res, r in zip(results, replies)]

    def _user_prompt(self, instruction: str) -> list[int]:
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                                  add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def reply_logprobs(self, instruction: str, replies: list[str]) -> list[float]:
        """Total log-probability of each reply as the assistant's turn after ``instruction``."""
        tails = [self.tokenizer(r, add_special_tokens=False).input_ids for r in replies]
        if not all(tails):
            raise AcdcError("reply_logprobs: every reply needs at least one token")
        return [float(sum(s)) for s in self._scores(self._user_prompt(instruction), tails)]

    def mean_logprob(self, instructions: list[str], responses: list[str]) -> list[float]:
        """Mean log-probability per token of each response after its instruction (``-inf`` if empty)."""
        out = []
        for instruction, response in zip(instructions, responses):
            answer = self.tokenizer(response, add_special_tokens=False).input_ids
            out.append(float(sum(self._scores(self._user_prompt(instruction), [answer])[0]) / len(answer))
                       if answer else float("-inf"))
        return out

    def close(self) -> None:
        self.generator = self.model = None
        self._params = {}
        shutil.rmtree(self.scratch, ignore_errors=True)


@hookimpl
def acdc_make_backend(config, model_dir):
    if config.generation.backend != NAME:
        return None
    section = config.section(NAME)
    return CTranslate2Backend(model_dir, compute_type=section.compute_type, threads=section.threads,
                              max_batch_size=section.max_batch_size)
