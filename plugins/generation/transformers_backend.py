"""Built-in plugin ``transformers`` (always on): the default generation backend.

One resident ``AutoModelForCausalLM`` on the CPU, built once from a seed
checkpoint. Candidates' weights are copied into it in place, tensor by tensor
from their safetensors file (tied tensors are shared storage, so they follow).
Answers use the tokenizer's chat template and are generated in batches of
prompts sorted by length, by a plain decode loop over the model's forward
and its KV cache. The tokens every prompt of a batch starts with (the chat
template's system prompt) are run once and their KV cache repeated to the
batch, laid out as [shared prefix][left padding][rest of the prompt] with
positions following the attention mask. An answer leaves the batch (its
cache rows are dropped) the step it produces an end-of-sequence token. In
float32 the answers equal one plain ``generate()`` per prompt; in bfloat16 a
few differ, as with any change of batch layout. With ``batch_size = 0``
the batch size is chosen from the memory available now
(:func:`auto_batch_size`). Answers are greedy unless a temperature is given
(the control of ``acdc-engine evaluate`` samples). :meth:`TransformersBackend.chat`
also answers whole conversations (the local LLM of ``plugins/llm/llm_client.py`` uses
it); ``mean_logprob`` scores given responses, for the best-of-N judge, and
``reply_logprobs`` ranks the replies to one prompt (multiple choice by likelihood).
:meth:`TransformersBackend.complete` and ``continuation_logprobs`` continue and score raw text
without the chat template, for lm-evaluation-harness tasks (``evaluate --lm-eval``).
"""


from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch
from transformers import DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from acdc_engine.api import AcdcError, CheckpointReader, hookimpl

NAME = "transformers"
MIN_SHARED_PREFIX = 8  # a shorter common prefix is not worth its own forward pass
MAX_AUTO_BATCH = 64  # beyond this a 2-core CPU gains nothing and the longest answer holds the batch
SCORED_TOKENS = 2048  # tokens per batch of continuation_logprobs: their logits over the vocabulary are its peak
MAX_SCORED_PROMPTS = 16  # questions per batch of replies_logprobs


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` of /proc/meminfo)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def sequence_bytes(config, length: int, dtype_bytes: int) -> int:
    """Rough peak bytes one sequence of ``length`` tokens needs while generating.

    KV cache, the prefill's activations and attention scores, and the logits
    and scores over the vocabulary at each step.
    """
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    kv = 2 * config.num_hidden_layers * kv_heads * head_dim * length * dtype_bytes
    activations = length * (4 * config.hidden_size + 3 * config.intermediate_size) * dtype_bytes
    attention = heads * length * length * 4
    logits = 4 * config.vocab_size * 4
    return kv + activations + attention + logits


def auto_batch_size(config, length: int, dtype_bytes: int, available: int | None = None) -> int:
    """Sequences per batch that fit in a quarter of the available memory, 1 to MAX_AUTO_BATCH."""
    free = available_memory() if available is None else available
    return max(1, min(MAX_AUTO_BATCH, free // 4 // sequence_bytes(config, length, dtype_bytes)))


def end_token_ids(model_dir: Path, tokenizer) -> list[int]:
    """The token ids that end an answer: the tokenizer's end of text and the ``eos_token_id`` of the
    checkpoint's generation config (the compiled backends stop where the model's ``generate`` stops)."""
    from transformers import GenerationConfig

    try:
        extra = GenerationConfig.from_pretrained(model_dir).eos_token_id
    except OSError:
        extra = None
    extra = [extra] if isinstance(extra, int) else list(extra or [])
    return sorted({tokenizer.eos_token_id, *extra} - {None})


class TransformersBackend:
    """A resident transformers model whose weights are swapped per candidate."""

    def __init__(self, model_dir: Path, *, dtype: str = "bfloat16", batch_size: int = 0) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.batch_size = batch_size
        self.generated_tokens = 0  # tokens produced so far, up to each answer's end
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
        self._params = dict(self.model.state_dict())
        # the KV-cache argument is ``cache`` from transformers 5.2x, ``past_key_values`` before (vLLM's env pins 5.19)
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = sorted({*eos, self.tokenizer.eos_token_id} - {None})

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
        ids = self.tokenizer([self._prompt(m) for m in conversations]).input_ids
        return self._answer(ids, max_new_tokens, temperature, seed, on_batch)

    @torch.inference_mode()
    def complete(self, texts, *, max_new_tokens, stop=(), temperature=0.0, seed=None):
        """Raw-text continuation of each text (no chat template), ended by an end-of-sequence token or
        by a ``stop`` string and cut before the first one; greedy unless ``temperature`` > 0."""
        ids = self.tokenizer(list(texts), add_special_tokens=False).input_ids
        out = self._answer(ids, max_new_tokens, temperature, seed or 0, None, tuple(stop))
        return [min((t[:t.index(s)] for s in stop if s in t), key=len, default=t) for t in out]

    def _answer(self, ids, max_new_tokens, temperature, seed, on_batch, stop=()):
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        answers: list[str] = [""] * len(ids)
        start = 0
        while start < len(order):
            size = self.batch_size or auto_batch_size(
                self.model.config, len(ids[order[min(start + MAX_AUTO_BATCH, len(order)) - 1]]) + max_new_tokens,
                self.model.dtype.itemsize)
            idx = order[start : start + size]
            texts = self._generate_batch([ids[i] for i in idx], max_new_tokens, temperature, seed + start,
                                         on_done=on_batch, stop=stop)
            for i, text in zip(idx, texts):
                answers[i] = text
            start += len(idx)
        return answers

    def _generate_batch(self, batch: list[list[int]], max_new_tokens: int, temperature: float,
                        seed: int, on_done=None, stop: tuple[str, ...] = ()) -> list[str]:
        """Answers to one batch of tokenised prompts, left-padded.

        Prefill once, then one token per step; an answer that has ended leaves
        the batch (its rows of the KV cache are dropped), so the last long
        answer does not drag the finished ones through every step.
        ``on_done(n)`` is told of the ``n`` answers that ended at a step. An answer also ends when
        its text holds one of the ``stop`` strings.
        """
        shared = _shared_prefix(batch) if len(batch) > 1 else 0
        cache = DynamicCache(config=self.model.config)
        if shared:  # the prefix's KV once, repeated to the batch: [prefix][pads][rest]
            self.model(input_ids=torch.tensor([batch[0][:shared]]), **{self._cache_arg: cache})
            cache.batch_repeat_interleave(len(batch))
        enc = self.tokenizer.pad({"input_ids": [ids[shared:] for ids in batch]}, return_tensors="pt", padding=True)
        mask = torch.cat([enc.attention_mask.new_ones(len(batch), shared), enc.attention_mask], dim=1)
        position = mask.cumsum(-1) - 1
        position.masked_fill_(mask == 0, 1)
        pick = _token_picker(temperature, seed)
        logits = self.model(input_ids=enc.input_ids, attention_mask=mask, position_ids=position[:, shared:],
                            logits_to_keep=1, **{self._cache_arg: cache}).logits[:, -1]
        position = position[:, -1]
        live = list(range(len(batch)))  # batch rows still answering, in cache order
        tokens: list[list[int]] = [[] for _ in batch]
        tail = max(map(len, stop), default=0) + 1  # enough last tokens to hold a stop string
        for step in range(max_new_tokens):
            nxt = pick(logits)
            keep = []
            for i, (row, token) in enumerate(zip(live, nxt.tolist())):
                tokens[row].append(token)
                if token not in self.eos_ids and not (
                        stop and any(s in self.tokenizer.decode(tokens[row][-tail:]) for s in stop)):
                    keep.append(i)
            if not keep or step == max_new_tokens - 1:
                break
            if on_done and len(keep) < len(live):
                on_done(len(live) - len(keep))
            if len(keep) < len(live):
                kept = torch.tensor(keep)
                cache.batch_select_indices(kept)
                mask, nxt, position = mask[kept], nxt[kept], position[kept]
                live = [live[i] for i in keep]
            mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
            position = position + 1
            logits = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=position[:, None],
                                **{self._cache_arg: cache}).logits[:, -1]
        self.generated_tokens += sum(map(len, tokens))
        texts = [self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]
        if on_done:
            on_done(len(live))  # the answers still open at the last step
        return texts

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

    @torch.inference_mode()
    def reply_logprobs(self, instruction: str, replies: list[str]) -> list[float]:
        """Total log-probability of each reply as the assistant's turn after ``instruction``: the
        prompt is run once and the replies, as one batch, continue its KV cache."""
        prompt = self.tokenizer(self._prompt([{"role": "user", "content": instruction}]),
                                add_special_tokens=False).input_ids
        tails = [self.tokenizer(r, add_special_tokens=False).input_ids for r in replies]
        if not all(tails):
            raise AcdcError("reply_logprobs: every reply needs at least one token")
        cache = DynamicCache(config=self.model.config)
        first = torch.log_softmax(self.model(input_ids=torch.tensor([prompt]), logits_to_keep=1,
                                             **{self._cache_arg: cache}).logits[0, -1].float(), dim=-1)
        out = [float(first[t[0]]) for t in tails]
        longest = max(map(len, tails))
        if longest > 1:  # the replies' later tokens, right-padded after the shared prompt
            cache.batch_repeat_interleave(len(tails))
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([t[:-1] + [pad] * (longest - len(t)) for t in tails])
            mask = torch.cat([torch.ones(len(tails), len(prompt), dtype=torch.long),
                              torch.tensor([[1] * (len(t) - 1) + [0] * (longest - len(t)) for t in tails])], dim=1)
            position = torch.arange(len(prompt), len(prompt) + longest - 1).expand(len(tails), -1)
            logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask, position_ids=position,
                                                **{self._cache_arg: cache}).logits.float(), dim=-1)
            for i, t in enumerate(tails):
                out[i] += float(sum(logp[i, j, t[j + 1]] for j in range(len(t) - 1)))
        return out

    @torch.inference_mode()
    def replies_logprobs(self, questions: list[tuple[str, list[str]]]) -> list[list[float]]:
        """:meth:`reply_logprobs` of several questions at once, ``(instruction, replies)`` each: prompts of
        alike length prefilled as one left-padded batch, each prompt's cache repeated to its replies, and
        the replies' later tokens run as one right-padded batch. In float32 the figures equal
        :meth:`reply_logprobs`'s to rounding; in bfloat16 the batch layout moves them slightly."""
        prompts = [self.tokenizer(self._prompt([{"role": "user", "content": q}]), add_special_tokens=False).input_ids
                   for q, _ in questions]
        tails = [[self.tokenizer(r, add_special_tokens=False).input_ids for r in replies] for _, replies in questions]
        if not all(all(t) for t in tails):
            raise AcdcError("reply_logprobs: every reply needs at least one token")
        out: list[list[float]] = [[] for _ in questions]
        order = sorted(range(len(questions)), key=lambda i: len(prompts[i]))
        start = 0
        while start < len(order):
            longest = len(prompts[order[min(start + MAX_SCORED_PROMPTS, len(order)) - 1]])
            size = max(1, min(MAX_SCORED_PROMPTS, SCORED_TOKENS // longest))
            batch = order[start:start + size]
            for i, scores in zip(batch, self._replies_batch([prompts[i] for i in batch], [tails[i] for i in batch])):
                out[i] = scores
            start += len(batch)
        return out

    def _replies_batch(self, prompts: list[list[int]], tails: list[list[list[int]]]) -> list[list[float]]:
        pad = self.tokenizer.pad_token_id
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        position = mask.cumsum(-1) - 1
        position.masked_fill_(mask == 0, 1)
        cache = DynamicCache(config=self.model.config)
        first = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask, position_ids=position, logits_to_keep=1,
                                             **{self._cache_arg: cache}).logits[:, -1].float(), dim=-1)
        out = [[float(first[q, t[0]]) for t in replies] for q, replies in enumerate(tails)]
        rows = [(q, r) for q, replies in enumerate(tails) for r in range(len(replies))]
        longest = max(len(tails[q][r]) for q, r in rows)
        if longest > 1:  # each reply's later tokens after its own prompt's cache
            owner = torch.tensor([q for q, _ in rows])
            cache.batch_select_indices(owner)
            reply_ids = torch.tensor([tails[q][r][:-1] + [pad] * (longest - len(tails[q][r])) for q, r in rows])
            reply_mask = torch.tensor([[1] * (len(tails[q][r]) - 1) + [0] * (longest - len(tails[q][r]))
                                       for q, r in rows])
            after = torch.tensor([len(prompts[q]) for q, _ in rows])[:, None] + torch.arange(longest - 1)[None]
            logp = torch.log_softmax(self.model(input_ids=reply_ids, attention_mask=torch.cat([mask[owner], reply_mask], 1),
                                                position_ids=after, **{self._cache_arg: cache}).logits.float(), dim=-1)
            for k, (q, r) in enumerate(rows):
                t = tails[q][r]
                out[q][r] += float(sum(logp[k, j, t[j + 1]] for j in range(len(t) - 1)))
        return out

    @torch.inference_mode()
    def continuation_logprobs(self, pairs):
        """Per (context, continuation) of raw text: the continuation's total log-probability and whether
        each of its tokens is the greedy one. A context's trailing spaces go to the continuation, whose
        tokens are those of ``context + continuation`` after the context's own; an empty context starts
        from the end-of-sequence token. Beyond the model's window the earliest tokens are dropped, and a
        continuation longer than the window is scored window by window, each seeing what precedes it."""
        window = self.model.config.max_position_embeddings
        jobs = []  # (pair index, input ids, first target position in them, targets)
        for k, (context, continuation) in enumerate(pairs):
            spaces = len(context) - len(context.rstrip(" "))
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            if context:
                head = self.tokenizer(context, add_special_tokens=False).input_ids
                seq = self.tokenizer(context + continuation, add_special_tokens=False).input_ids
            else:
                head = [self.tokenizer.eos_token_id]
                seq = head + self.tokenizer(continuation, add_special_tokens=False).input_ids
            start = len(head)
            while start < len(seq):
                end = min(len(seq), start + window)
                lo = max(0, end - 1 - window)
                jobs.append((k, seq[lo:end - 1], start - 1 - lo, seq[start:end]))
                start = end
        logp, greedy = [0.0] * len(pairs), [True] * len(pairs)
        jobs.sort(key=lambda j: len(j[1]))
        start = 0
        while start < len(jobs):
            longest = len(jobs[min(start + MAX_AUTO_BATCH, len(jobs)) - 1][1])
            rows = self.batch_size or max(1, min(MAX_AUTO_BATCH, SCORED_TOKENS // longest))
            batch = jobs[start:start + rows]
            longest = max(len(j[1]) for j in batch)
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([j[1] + [pad] * (longest - len(j[1])) for j in batch])
            mask = torch.tensor([[1] * len(j[1]) + [0] * (longest - len(j[1])) for j in batch])
            logits = self.model(input_ids=ids, attention_mask=mask).logits
            for row, (k, _, first, targets) in enumerate(batch):
                scores = torch.log_softmax(logits[row, first:first + len(targets)].float(), dim=-1)
                target = torch.tensor(targets)
                logp[k] += float(scores.gather(1, target[:, None]).sum())
                greedy[k] = greedy[k] and bool((scores.argmax(-1) == target).all())
            start += len(batch)
        return list(zip(logp, greedy))

    def close(self) -> None:
        self.model = None
        self._params = {}


def _shared_prefix(batch: list[list[int]]) -> int:
    """Tokens all prompts start with (at least one left to each), or 0 below MIN_SHARED_PREFIX."""
    shared = min(len(ids) for ids in batch) - 1
    for ids in batch[1:]:
        shared = next((k for k in range(shared) if ids[k] != batch[0][k]), shared)
    return shared if shared >= MIN_SHARED_PREFIX else 0


def _token_picker(temperature: float, seed: int):
    """Next tokens from last-position logits: greedy at temperature 0, else
    sampled (temperature, top-p 0.95: transformers' warpers) from ``seed``."""
    if temperature <= 0:
        return lambda logits: logits.argmax(-1)
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(0.95)])
    generator = torch.Generator().manual_seed(seed)

    def sample(logits):
        scores = warpers(None, logits.float())
        return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)[:, 0]

    return sample


@hookimpl
def acdc_make_backend(config, model_dir):
    if config.generation.backend != NAME:
        return None
    return TransformersBackend(model_dir, dtype=config.generation.dtype, batch_size=config.generation.batch_size)
