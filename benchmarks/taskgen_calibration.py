"""Measure the seed model on the procedural generator's initial pool.

Usage: python benchmarks/taskgen_calibration.py CHECKPOINT_DIR [SEED ...]

Builds the default initial pool (12 families x 3 instances) for each seed,
answers every instruction greedily (bfloat16, chat template, left padding,
48 new tokens, one batch), extracts answers like the engine does and scores
them with each family's own ``score()`` run in a subprocess. Prints the mean
score per family and the share of families passed (mean >= 0.5).
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from acdc_engine.answers import extract_answer
from acdc_engine.plugins.taskgen import acdc_generate_tasks
from acdc_engine.tasks import TaskRequest

RUNNER = """
import json, sys
job = json.load(sys.stdin)
space = {}
exec(job["source"], space)
family = space["TaskFamily"]
tasks = family.get_tasks()
if job["submissions"] is None:
    print(json.dumps({k: family.get_instructions(t) for k, t in tasks.items()}))
else:
    print(json.dumps([family.score(tasks[k], s) for k, s in zip(tasks, job["submissions"])]))
"""


def run_family(source: str, submissions: list[str] | None):
    """Instructions (``submissions=None``) or scores, from the family's own code in a subprocess."""
    job = json.dumps({"source": source, "submissions": submissions})
    done = subprocess.run([sys.executable, "-I", "-c", RUNNER], input=job, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(checkpoint: str, seeds: list[int]) -> None:
    specs = [s for seed in seeds for s in acdc_generate_tasks(TaskRequest(mode="initial", n=12, seed=seed, instances=3))]
    instructions = [list(run_family(s.source, None).values()) for s in specs]

    tok = AutoTokenizer.from_pretrained(checkpoint)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.bfloat16).eval()
    flat = [text for family in instructions for text in family]
    prompts = [tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
               for text in flat]
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=48, do_sample=False, pad_token_id=tok.pad_token_id)
    responses = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    passed, at = 0, 0
    for spec, family in zip(specs, instructions):
        answers = [extract_answer(r) for r in responses[at:at + len(family)]]
        at += len(family)
        scores = run_family(spec.source, answers)
        mean = sum(scores) / len(scores)
        passed += mean >= 0.5
        print(f"{spec.name:34s} {mean:.2f}  {answers}")
    print(f"passed {passed}/{len(specs)} families ({passed / len(specs):.0%})")


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]] or [0])
