"""`acdc-engine evaluate --lm-eval`: the backend's raw-text methods against plain transformers, and
lm-evaluation-harness tasks over local JSONL run end to end on a tiny run (per-sample log, Coverage
arithmetic, the answer cache, one-line errors)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections import defaultdict

import pytest
import torch
from click.testing import CliRunner

from acdc_engine.ui.cli import main
from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError
from acdc_engine.plugins.generation.transformers_backend import TransformersBackend
from conftest import tiny_overrides
from test_loop_tiny import run_once

GEN = [{"question": "What is 2 + 3?", "answer": "5"}, {"question": "What is the capital of France?", "answer": "Paris"},
       {"question": "What color is the sky?", "answer": "blue"}, {"question": "What is 10 - 4?", "answer": "6"}]
MC = [{"question": "Which is a fruit?", "choices": ["car", "apple", "stone"], "label": 1},
      {"question": "Which animal barks?", "choices": ["dog", "cat", "fish"], "label": 0},
      {"question": "Which is hot?", "choices": ["ice", "snow", "fire"], "label": 2},
      {"question": "Which one flies?", "choices": ["bird", "rock"], "label": 0},
      {"question": "Which is a colour?", "choices": ["table", "green", "seven", "run"], "label": 1}]
GEN_YAML = """task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n", "Question:"]
  max_gen_toks: 4
metric_list:
  - metric: exact_match
    ignore_case: true
"""
MC_YAML = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""


@pytest.fixture(scope="module")
def backend(tiny_models):
    b = TransformersBackend(tiny_models["a"], dtype="float32")
    yield b
    b.close()


def plain_logprobs(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)


def test_continuation_logprobs_equal_a_plain_forward_pass(backend):
    tok, model = backend.tokenizer, backend.model
    pairs = [("Question: Which is a fruit?\nAnswer:", " apple"), ("Which animal barks? ", "the dog"),
             ("", "A whole text, scored from its start.")]
    got = backend.continuation_logprobs(pairs)
    for (context, continuation), (logp, greedy) in zip(pairs, got):
        if context:
            context, continuation = context.rstrip(" "), context[len(context.rstrip(" ")):] + continuation
            head = tok(context, add_special_tokens=False).input_ids
            seq = tok(context + continuation, add_special_tokens=False).input_ids
        else:
            head = [tok.eos_token_id]
            seq = head + tok(continuation, add_special_tokens=False).input_ids
        scores = plain_logprobs(model, seq)
        targets = range(len(head), len(seq))
        assert logp == pytest.approx(sum(float(scores[i - 1, seq[i]]) for i in targets), abs=1e-4)
        assert greedy == all(int(scores[i - 1].argmax()) == seq[i] for i in targets)
    context = "The capital of France is"
    ids = tok(context, add_special_tokens=False).input_ids
    best = int(plain_logprobs(model, ids)[-1].argmax())
    text = tok.decode([best])
    assert tok(context + text, add_special_tokens=False).input_ids == ids + [best]  # the test's own premise
    [(logp, greedy)] = backend.continuation_logprobs([(context, text)])
    assert greedy and logp == pytest.approx(float(plain_logprobs(model, ids)[-1, best]), abs=1e-4)


def test_complete_continues_raw_text_as_generate_does_and_stops(backend):
    tok, model = backend.tokenizer, backend.model
    texts = ["Question: What is 2 + 3?\nAnswer:", "The capital of France is"]
    got = backend.complete(texts, max_new_tokens=8)
    for text, answer in zip(texts, got):
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        assert answer == tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    stop = got[1][3:6]
    [cut] = backend.complete(texts[1:], max_new_tokens=8, stop=(stop, "never there"))
    assert cut == got[1][:got[1].index(stop)]
    sampled = backend.complete(texts, max_new_tokens=8, temperature=0.7, seed=3)
    assert sampled == backend.complete(texts, max_new_tokens=8, temperature=0.7, seed=3) != got


@pytest.fixture(scope="module")
def lm_run(tiny_models, tmp_path_factory):
    """A tiny run with its own cache folder, and a folder of two lm-eval tasks over local JSONL."""
    root = tmp_path_factory.mktemp("lmeval")
    config = load_config(None, tiny_overrides(tiny_models, root, **{"run.generations": 1,
                                                                     "models.cache_dir": str(root / "cache")}))
    run_once(config, root / "run")
    tasks = root / "tasks"
    tasks.mkdir()
    for name, rows, yaml in (("gen", GEN, GEN_YAML), ("mc", MC, MC_YAML)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tasks / f"{name}.yaml").write_text(yaml.format(data=root / f"{name}.jsonl"))
    (tasks / "group.yaml").write_text("group: tiny_group\ntask:\n  - tiny_gen\n  - tiny_mc\n")
    return root


def evaluate(root, out, *extra, tasks="tiny_gen,tiny_mc"):
    args = ["evaluate", str(root / "run"), "--lm-eval", tasks, "--lm-eval-include", str(root / "tasks"),
            "--samples", "2", "--json", str(out), *extra]
    started = time.perf_counter()
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["lm_eval"], result.output, time.perf_counter() - started


def test_lm_eval_tasks_score_every_system_from_the_per_sample_log_and_cache(lm_run, tmp_path):
    report, output, first_s = evaluate(lm_run, tmp_path / "first.json")
    log = [json.loads(line) for line in (tmp_path / "first-samples.jsonl").read_text().splitlines()]
    benches = report["benchmarks"]
    assert benches["tiny_gen"]["n_items"] == len(GEN) and benches["tiny_mc"]["n_items"] == len(MC)
    assert benches["tiny_gen"]["primary_metric"] == "exact_match" and benches["tiny_mc"]["primary_metric"] == "acc"
    systems = list(benches["tiny_mc"]["systems"])
    assert systems[0].startswith("task force") and any(s.startswith("control (2 samples") for s in systems)
    assert sum(s.startswith("seed ") for s in systems) == 2
    members = sum(benches["tiny_mc"]["systems"][s]["n"] for s in systems)
    assert len(log) == members * (len(GEN) + len(MC))  # one record per member and question
    solved = defaultdict(lambda: defaultdict(list))
    by_member = defaultdict(list)
    for rec in log:
        metric = benches[rec["task"]]["primary_metric"]
        assert rec["solved"] == (rec[metric] == 1)
        solved[(rec["system"], rec["task"])][rec["doc_id"]].append(rec["solved"])
        by_member[(rec["system"], rec["task"], rec["member"], rec["sample"])].append(rec[metric])
        if rec["task"] == "tiny_mc":
            finite = [lp for lp, _ in rec["filtered_resps"] if math.isfinite(lp)]
            # a control sample answers by one choice drawn from the choices' probabilities
            assert len(finite) == (1 if rec["sample"] is not None else len(rec["filtered_resps"]))
        else:
            assert rec["arguments"][0][1]["until"] == ["\n", "Question:"]
    for task, bench in benches.items():
        for name, s in bench["systems"].items():
            rows = list(solved[(name, task)].values())
            assert len(rows) == bench["n_items"] and all(len(r) == s["n"] for r in rows)
            assert s["coverage"] == pytest.approx(sum(map(any, rows)) / len(rows))
            assert 0 <= s["majority"] <= s["coverage"] and 0 <= s["best_of_n"] <= s["coverage"]
            if s["n"] == 1:
                assert s["coverage"] == s["majority"] == s["best_of_n"]
            for m in s["members"]:  # lm-eval's own aggregate is the mean of the member's per-sample metric
                values = by_member[(name, task, m["member"], m["sample"])]
                assert m["metrics"][f"{bench['primary_metric']},none"] == pytest.approx(sum(values) / len(values))
    # multiple choice: majority vote over the members' chosen choices (ties to the earliest member), and
    # best-of-N by the judge's (the base seed's) log-likelihood of each member's choice
    judge = {rec["doc_id"]: [lp for lp, _ in rec["filtered_resps"]] for rec in log
             if rec["task"] == "tiny_mc" and rec["system"] == f"seed {report['judge']}"}
    for name, s in benches["tiny_mc"]["systems"].items():
        recs = defaultdict(list)
        for rec in log:
            if rec["task"] == "tiny_mc" and rec["system"] == name:
                recs[rec["doc_id"]].append(rec)
        majority = best = 0
        for doc, group in recs.items():
            picks = [max(range(len(r["filtered_resps"])), key=lambda c: (r["filtered_resps"][c][0], -c)) for r in group]
            top = max(picks, key=lambda c: (picks.count(c), -picks.index(c)))
            majority += group[picks.index(top)]["solved"]
            best += group[max(range(len(group)), key=lambda k: (judge[doc][picks[k]], -k))]["solved"]
        assert (s["majority"], s["best_of_n"]) == (pytest.approx(majority / len(recs)), pytest.approx(best / len(recs)))
    assert report["cache"]["fresh"] > 0 and report["cache"]["backend_calls"] > 0
    assert "lm-eval tasks" in output and "from the cache" in output

    again, output, second_s = evaluate(lm_run, tmp_path / "second.json")
    assert again["cache"] == {"fresh": 0, "backend_calls": 0,
                              "from_cache": report["cache"]["fresh"] + report["cache"]["from_cache"]}
    for task in benches:
        for name, s in benches[task]["systems"].items():
            t = again["benchmarks"][task]["systems"][name]
            assert (t["coverage"], t["majority"], t["best_of_n"]) == (s["coverage"], s["majority"], s["best_of_n"])
    print(f"\nlm-eval evaluate: first {first_s:.1f} s ({report['cache']}), second {second_s:.1f} s ({again['cache']})")

    limited, _, _ = evaluate(lm_run, tmp_path / "limited.json", "--limit", "2", tasks="tiny_group")
    assert {t: b["n_items"] for t, b in limited["benchmarks"].items()} == {"tiny_gen": 2, "tiny_mc": 2}
    assert limited["cache"]["fresh"] == 0  # a group's tasks, the first two questions: all answered before


def test_lm_eval_bad_input_is_one_line(lm_run, tmp_path):
    from acdc_engine.evaluation.lm_eval_adapter import LmEvalEvaluation

    runner = CliRunner()
    base = ["evaluate", str(lm_run / "run"), "--json", str(tmp_path / "r.json")]
    result = runner.invoke(main, [*base, "--lm-eval", "tiny_mcq", "--lm-eval-include", str(lm_run / "tasks")])
    assert result.exit_code == 3
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: unknown lm-eval task 'tiny_mcq' (did you mean tiny_mc, ")
    missing = lm_run / "no-such-tasks"
    result = runner.invoke(main, [*base, "--lm-eval", "tiny_mc", "--lm-eval-include", str(missing)])
    assert result.exit_code == 3
    assert result.output.strip().splitlines() == [f"error: --lm-eval-include {missing}: no such folder"]
    result = runner.invoke(main, ["evaluate", str(lm_run / "run"), "--lm-eval", "tiny_mc"])
    assert result.output.strip().splitlines() == ["error: --lm-eval needs --json FILE: the report, with the "
                                                  "per-sample log written beside it"]
    with pytest.raises(AcdcError, match="unknown lm-eval task 'nope'"):
        LmEvalEvaluation(["nope"], include=lm_run / "tasks")
    hub = tmp_path / "hub"  # a task whose dataset is on the hub only, which is offline
    hub.mkdir()
    (hub / "t.yaml").write_text(MC_YAML.format(data=lm_run / "mc.jsonl").replace("tiny_mc", "hub_mc").replace(
        "dataset_path: json", "dataset_path: acdc-engine-tests/not-cached"))
    result = runner.invoke(main, [*base, "--lm-eval", "hub_mc", "--lm-eval-include", str(hub)])
    assert result.exit_code == 3 and result.output.splitlines()[-1].startswith(
        "error: lm-eval tasks hub_mc: ") and "HF_DATASETS_OFFLINE=0 HF_HUB_OFFLINE=0" in result.output


def test_the_model_class_is_registered_beside_lm_evals_own():
    # a fresh process: lm-eval fills its model registry only while it is empty
    code = ("import acdc_engine.evaluation.lm_eval_adapter as a; from lm_eval.api.registry import get_model; "
            "assert get_model('acdc-engine') is a.AcdcLM; print(get_model('hf').__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["HFLM"]
