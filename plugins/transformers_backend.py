"""Built-in plugin ``transformers`` (always on): the default generation backend.

One resident ``AutoModelForCausalLM`` on the CPU, built once from a seed
checkpoint. Candidates' weights are copied into it in place, tensor by tensor
from their safetensors file (tied tensors are shared storage, so they follow).
Answers are greedy unless a temperature is given (the control of
``acdc-engine evaluate`` samples), use the tokenizer's chat template, and are
generated in batches of prompts sorted by length with left padding.
:meth:`TransformersBackend.chat` also answers whole conversations (the local
LLM of ``plugins/llm.py`` uses it); ``mean_logprob`` scores given responses,
for the best-of-N judge.
"""

from __future__ import annotations

from pathlib import Path

import torch

from acdc_engine.checkpoint import CheckpointReader
from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl

NAME = "transformers"


class TransformersBackend:
    """A resident transformers model whose weights are swapped per candidate."""

    def __init__(self, model_dir: Path, *, dtype: str = "bfloat16", batch_size: int = 16) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
        self._params = dict(self.model.state_dict())

    @torch.no_grad()
    def load_weights(self, weights_file: Path) -> None:
        """Copies every tensor of ``weights_file`` into the resident model."""
        with CheckpointReader(weights_file) as f:
            for name in f.keys():
                if name not in self._params:
                    raise AcdcError(f"weights {weights_file}: tensor {name} is not in the resident model")
                self._params[name].copy_(f.tensor(name))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The resident model's tensors by checkpoint name, for in-place materialisation."""
        return self._params

    def _prompt(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, instructions, *, max_new_tokens, on_batch=None, temperature=0.0, seed=None):
        """Answers single-turn instructions: greedy by default; sampled at
        ``temperature`` (> 0), reproducibly from ``seed``."""
        return self.chat([[{"role": "user", "content": i}] for i in instructions], max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed or 0, on_batch=on_batch)

    @torch.inference_mode()
    def chat(self, conversations, *, max_new_tokens, temperature=0.0, seed=0, on_batch=None):
        """The next assistant turn of each conversation (lists of role/content dicts).

        Greedy when ``temperature`` is 0; otherwise sampled, reproducibly from ``seed``.
        """
        prompts = [self._prompt(m) for m in conversations]
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if temperature > 0 else {
            "do_sample": False}
        lengths = [len(self.tokenizer(p).input_ids) for p in prompts]
        order = sorted(range(len(prompts)), key=lengths.__getitem__)
        answers: list[str] = [""] * len(prompts)
        sampling = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature}
            torch.manual_seed(0 if seed is None else seed)  # transformers samples from torch's default generator
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True)
            with torch.random.fork_rng():
                torch.manual_seed(seed + start)
                out = self.model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **sampling,
                )
            new = out[:, enc.input_ids.shape[1] :]
            for i, row in zip(idx, new):
                answers[i] = self.tokenizer.decode(row, skip_special_tokens=True)
            if on_batch:
                on_batch(len(idx))
        return answers

    @torch.inference_mode()
    def mean_logprob(self, instructions: list[str], responses: list[str]) -> list[float]:
        """Mean log-probability per token of each response after its instruction
        (``-inf`` for an empty response): the judge's preference."""
        out = []
        for instruction, response in zip(instructions, responses):
            prompt = self.tokenizer(self._prompt([{"role": "user", "content": instruction}]),
                                    add_special_tokens=False).input_ids
            answer = self.tokenizer(response, add_special_tokens=False).input_ids
            if not answer:
                out.append(float("-inf"))
                continue
            ids = torch.tensor([prompt + answer])
            logits = self.model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
            logp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(answer)[:, None])
            out.append(float(logp.mean()))
        return out

    def close(self) -> None:
        self.model = None
        self._params = {}


@hookimpl
def acdc_make_backend(config, model_dir):
    if config.generation.backend != NAME:
        return None
    return TransformersBackend(model_dir, dtype=config.generation.dtype, batch_size=config.generation.batch_size)
