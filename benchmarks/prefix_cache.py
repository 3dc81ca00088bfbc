"""Experiment: reuse the chat template's shared prefix KV cache in a batch (not enabled in the backend).

Usage: python benchmarks/prefix_cache.py CHECKPOINT_DIR float32|bfloat16 N_PROMPTS MAX_NEW_TOKENS

With left padding the shared prefix sits at different cache slots per row, so
a batch-1 prefix cache cannot be shared. This lays a batch out as
[prefix][pads][suffix] instead: the prefix's KV is computed once, repeated to
the batch, and passed to ``generate``; position ids come from the attention
mask, so each suffix continues at the prefix's length. Prints whether the
answers equal the plain left-padded backend's and both wall times.
"""

import copy
import sys
import time
from pathlib import Path

import torch

from acdc_engine.plugins.transformers_backend import TransformersBackend
d = Path(sys.argv[1]); dtype = sys.argv[2]
b = TransformersBackend(d, dtype=dtype, batch_size=0)
texts = [f"What is {i} + {i*7}? End your reply with \"Answer: <number>\"." if i % 2 else f"Reverse the word 'stone{i}'. Answer: <word>" for i in range(int(sys.argv[3]))]
prompts = [b._prompt([{"role": "user", "content": t}]) for t in texts]
ids = b.tokenizer(prompts).input_ids
P = 0
while all(len(x) > P + 1 and x[P] == ids[0][P] for x in ids): P += 1
print("prefix tokens", P, "mean prompt", sum(map(len, ids)) / len(ids))
N = int(sys.argv[4])
def plain():
    return b._generate_batch(ids, N, 0.0, 0)
@torch.inference_mode()
def prefixed():
    pre = torch.tensor([ids[0][:P]])
    cache = b.model(input_ids=pre, use_cache=True).past_key_values
    sfx = [x[P:] for x in ids]
    L = max(map(len, sfx)); B = len(ids); pad = b.tokenizer.pad_token_id
    inp = torch.tensor([ids[0][:P] + [pad] * (L - len(s)) + s for s in sfx])
    mask = torch.tensor([[1] * P + [0] * (L - len(s)) + [1] * len(s) for s in sfx])
    c = copy.deepcopy(cache); c.batch_repeat_interleave(B)
    out = b.model.generate(input_ids=inp, attention_mask=mask, cache=c, max_new_tokens=N, do_sample=False,
                           eos_token_id=b.eos_ids, pad_token_id=pad)
    res = []
    for row in out[:, inp.shape[1]:].tolist():
        end = next((k + 1 for k, t in enumerate(row) if t in b.eos_ids), len(row))
        res.append(b.tokenizer.decode(row[:end], skip_special_tokens=True))
    return res
with torch.inference_mode():
    plain()
    t=time.perf_counter(); a=plain(); ta=time.perf_counter()-t
    t=time.perf_counter(); c=prefixed(); tc=time.perf_counter()-t
    t=time.perf_counter(); a2=plain(); ta2=time.perf_counter()-t
print("same answers", a == c, sum(x == y for x, y in zip(a, c)), "of", len(a))
print(f"plain {ta:.2f}s / {ta2:.2f}s  prefix-reuse {tc:.2f}s")
