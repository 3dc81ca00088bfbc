"""lm-evaluation-harness on its own terms (issue 40, item 3): `evaluate --lm-eval` writes each member's results
in lm-eval's format (read back by lm-eval's own helpers), passes --num-fewshot, --apply-chat-template,
--system-instruction and --gen-kwargs through, the model class is usable from lm-eval's CLI (`acdc-lm-eval`)
and Python API by name, and the results reach the W&B (offline) and MLflow (file store) plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from acdc_engine.ui.cli import main
from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError
from conftest import tiny_overrides
from test_lm_eval import GEN, MC, lm_run  # noqa: F401  lm_run: the tiny run and its local lm-eval tasks
from test_loop_tiny import run_once

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.utils import (get_latest_filename, get_results_filenames, get_sample_results_filenames,  # noqa: E402
                           make_table)

import acdc_engine.evaluation.lm_eval_adapter as adapter  # noqa: E402

LM_EVAL_KEYS = ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "date",
                "lm_eval_version", "model_name", "model_name_sanitized", "model_source", "task_hashes",
                "chat_template", "fewshot_as_multiturn")


def evaluate(root, out, *extra, tasks="tiny_gen,tiny_mc", code=0):
    args = ["evaluate", str(root / "run"), "--lm-eval", tasks, "--lm-eval-include", str(root / "tasks"),
            "--samples", "2", "--json", str(out), *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    return result


def results_files(folder: Path) -> dict[str, Path]:
    """Each member folder's latest results file, found as lm-eval's own helpers find them."""
    names = [str(p) for p in folder.rglob("*.json*")]
    out = {}
    for member in {Path(n).parent for n in get_results_filenames(names)}:
        mine = [n for n in get_results_filenames(names) if Path(n).parent == member]
        out[member.name] = Path(get_latest_filename(mine))
    return out


def test_evaluate_writes_lm_evals_own_results_with_fewshot_chat_template_and_gen_kwargs(lm_run, tmp_path):
    out = tmp_path / "chat.json"
    evaluate(lm_run, out, "--num-fewshot", "1", "--apply-chat-template", "--system-instruction", "Answer briefly.",
             "--gen-kwargs", "max_gen_toks=3")
    report = json.loads(out.read_text())["lm_eval"]
    assert (report["num_fewshot"], report["apply_chat_template"], report["gen_kwargs"]) == (1, True,
                                                                                          {"max_gen_toks": 3})
    folder = Path(report["output_path"])
    assert folder == tmp_path / "chat-lm-eval"
    files = results_files(folder)
    # one folder per member: the task force's models, each seed, the control's 2 samples
    force = [m["member"] for m in report["benchmarks"]["tiny_mc"]["systems"][next(iter(
        report["benchmarks"]["tiny_mc"]["systems"]))]["members"]]
    assert set(files) == ({f"task-force__{m}" for m in force} | {"seed__a", "seed__b"}
                          | {"control__sample-0", "control__sample-1"})
    for name, entry in report["benchmarks"]["tiny_mc"]["systems"].items():
        for member in entry["members"]:
            path = Path(member["results_file"])
            assert path in files.values()
            saved = json.loads(path.read_text())
            assert all(k in saved for k in LM_EVAL_KEYS), sorted(set(LM_EVAL_KEYS) - set(saved))
            assert saved["n-shot"] == {"tiny_gen": 1, "tiny_mc": 1}
            assert saved["n-samples"]["tiny_mc"] == {"original": len(MC), "effective": len(MC)}
            assert saved["config"]["model"] == "acdc-engine" and saved["config"]["model_args"] == member["model_args"]
            assert saved["config"]["gen_kwargs"] == {"max_gen_toks": 3}
            assert saved["chat_template"] and saved["system_instruction"] == "Answer briefly."
            assert saved["model_source"] == "acdc-engine" and saved["config"]["model_sha"]
            assert saved["results"]["tiny_mc"]["acc,none"] == pytest.approx(member["metrics"]["acc,none"])
            table = make_table(saved)  # lm-eval's own table of a results file
            assert "tiny_gen" in table and "tiny_mc" in table and "exact_match" in table
    # lm-eval's per-sample files: the chat template, the system message, one few-shot example, 3 new tokens
    samples = [str(p) for p in folder.rglob("*.jsonl")]
    assert len(get_sample_results_filenames(samples)) == len(files) * 2
    seed_gen = next(Path(p) for p in samples if "seed__a/samples_tiny_gen_" in p)
    records = [json.loads(line) for line in seed_gen.read_text().splitlines()]
    assert len(records) == len(GEN)
    for rec in records:
        prompt, kwargs = rec["arguments"]["gen_args_0"]["arg_0"], rec["arguments"]["gen_args_0"]["arg_1"]
        assert prompt.startswith("<|im_start|>system\nAnswer briefly.") and prompt.endswith("<|im_start|>assistant\n")
        assert prompt.count("Question:") == 2 and kwargs["max_gen_toks"] == 3


def test_gen_kwargs_reach_the_backend_and_unknown_ones_are_one_line(lm_run, tiny_models, tmp_path):
    from lm_eval.api.instance import Instance

    from acdc_engine.plugins.generation.transformers_backend import TransformersBackend

    lm = adapter.AcdcLM.create_from_arg_string(f"pretrained={tiny_models['a']},dtype=float32,seed=5",
                                               {"batch_size": None, "device": "cpu"})
    assert isinstance(lm, adapter.AcdcLM)
    context = "Question: What is 2 + 3?\nAnswer:"

    def ask(**kwargs):
        return lm.generate_until([Instance("generate_until", {}, (context, {"until": ["\n"], "max_gen_toks": 6,
                                                                           **kwargs}), 0)])[0]

    backend = TransformersBackend(tiny_models["a"], dtype="float32")
    try:
        greedy = backend.complete([context], max_new_tokens=6, stop=("\n",))[0]
        sampled = backend.complete([context], max_new_tokens=6, stop=("\n",), temperature=0.9, seed=5)[0]
    finally:
        backend.close()
    assert ask() == ask(temperature=0.9, do_sample=False) == ask(temperature=0.0, top_p=0.5) == greedy
    assert ask(temperature=0.9, do_sample=True) == ask(temperature=0.9) == sampled != greedy
    with pytest.raises(AcdcError, match="top_p: acdc-engine's backends sample from the whole distribution"):
        ask(temperature=0.9, top_p=0.5)
    out = tmp_path / "r.json"
    for bad, line in ((["--gen-kwargs", "num_beams=4"], "error: --gen-kwargs num_beams: not supported by "
                       "acdc-engine's backends (they take until, max_gen_toks, temperature, do_sample)"),
                      (["--gen-kwargs", "temperature=0.5,top_k=5"], "error: --gen-kwargs top_k: acdc-engine's "
                       "backends sample from the whole distribution (temperature only)"),
                      (["--gen-kwargs", '{"temperature": 0.5'], "error: --gen-kwargs '{\"temperature\": 0.5': "
                       "Invalid JSON")):
        result = evaluate(lm_run, out, *bad, code=3)
        assert result.output.strip().splitlines()[-1].startswith(line), result.output
    result = CliRunner().invoke(main, ["evaluate", str(lm_run / "run"), "--benchmark", "x.jsonl", "--num-fewshot", "2"])
    assert result.exit_code == 3 and result.output.strip().splitlines()[-1].startswith(
        "error: --num-fewshot, --apply-chat-template")
    assert not out.exists()


def test_the_model_runs_from_lm_evals_own_cli_and_python_api_by_name(lm_run, tiny_models, tmp_path):
    """`acdc-lm-eval` is lm-eval's CLI with the class registered; its results equal evaluate's for that seed."""
    ours = tmp_path / "ours.json"
    evaluate(lm_run, ours, "--limit", "3", "--output-path", str(tmp_path / "mine"))
    report = json.loads(ours.read_text())["lm_eval"]
    assert report["output_path"] == str(tmp_path / "mine") and "seed__a" in results_files(tmp_path / "mine")
    result = evaluate(lm_run, tmp_path / "no.json", "--output-path", str(ours), code=3)
    assert result.output.strip().splitlines()[-1] == f"error: --output-path {ours} is a file, not a folder"
    seed_a = next(m for s, e in report["benchmarks"]["tiny_mc"]["systems"].items() if s.endswith(str(tiny_models["a"]))
                  for m in e["members"])
    out = tmp_path / "cli"
    cache = tmp_path / "cache"
    script = Path(sys.executable).with_name("acdc-lm-eval")
    command = [str(script) if script.exists() else sys.executable, *([] if script.exists() else
                                                                     ["-m", "acdc_engine.evaluation.lm_eval_cli"])]
    done = subprocess.run([*command, "run", "--model", "acdc-engine", "--model_args",
                           f"{seed_a['model_args']},cache_dir={cache}", "--tasks", "tiny_gen", "tiny_mc",
                           "--include_path", str(lm_run / "tasks"), "--limit", "3", "--output_path", str(out),
                           "--log_samples"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [saved] = [Path(p) for p in get_results_filenames([str(p) for p in out.rglob("*.json")])]
    saved = json.loads(saved.read_text())
    assert saved["config"]["model"] == "acdc-engine"
    for task in ("tiny_gen", "tiny_mc"):
        mine = json.loads(Path(seed_a["results_file"]).read_text())["results"][task]
        metric = "acc,none" if task == "tiny_mc" else "exact_match,none"
        assert saved["results"][task][metric] == pytest.approx(mine[metric])
    assert "tiny_mc" in done.stdout and "acc_norm" in done.stdout  # lm-eval's own table

    # the Python API, by name, on a model of the run (rebuilt from its ancestry if not kept)
    force = json.loads(ours.read_text())["lm_eval"]["benchmarks"]["tiny_mc"]["systems"]
    member = next(iter(force.values()))["members"][0]
    assert member["model_args"].startswith("run=")
    from lm_eval.tasks import TaskManager

    got = lm_eval.simple_evaluate(model="acdc-engine", model_args=f"{member['model_args']},cache_dir={cache}",
                                  tasks=["tiny_mc"], limit=3, task_manager=TaskManager(
                                      include_path=str(lm_run / "tasks")), bootstrap_iters=0)
    assert got["results"]["tiny_mc"]["acc,none"] == pytest.approx(member["metrics"]["acc,none"])

    bad = subprocess.run([*command, "run", "--model", "acdc-engine", "--model_args", f"pretrained={tmp_path}/none",
                          "--tasks", "tiny_mc", "--include_path", str(lm_run / "tasks")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 3
    assert bad.stderr.strip().splitlines()[-1] == (f"error: model_args pretrained={tmp_path}/none: "
                                                   "no model.safetensors there")
    with pytest.raises(AcdcError, match="model_args temperature: not known to the acdc-engine model"):
        adapter.AcdcLM.create_from_arg_string(f"pretrained={tiny_models['a']},temperature=0.5")
    with pytest.raises(AcdcError, match="give pretrained=CHECKPOINT_DIR, or run=RUN_DIR with model=MODEL_ID"):
        adapter.AcdcLM.create_from_arg_string("dtype=float32")
    with pytest.raises(AcdcError, match=f"model=nope: no such model in {lm_run / 'run'}"):
        adapter.AcdcLM.create_from_arg_obj({"run": str(lm_run / "run"), "model": "nope"})


def test_evaluate_results_reach_wandb_offline_and_mlflow(tiny_models, tmp_path, monkeypatch):
    """MLflow: the plugin's own default store, SQLite with file artifacts in the run folder (MLflow 3.17 refuses
    its older file-system store unless MLFLOW_ALLOW_FILE_STORE=true)."""
    from test_tracking import environment, wandb_run

    env = environment(tmp_path)  # no WANDB_* or MLFLOW_* of the caller's; W&B's cache and config in tmp_path
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = load_config(None, tiny_overrides(tiny_models, tmp_path, **{
        "run.generations": 1, "models.cache_dir": str(tmp_path / "cache"),
        "run.plugins": ["merge", "taskgen", "wandb", "mlflow"]}))
    run_dir = tmp_path / "run"
    run_once(config, run_dir)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MC))
    from test_lm_eval import MC_YAML

    (tasks / "mc.yaml").write_text(MC_YAML.format(data=tmp_path / "mc.jsonl"))
    from test_evaluate import QA

    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in QA))
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--benchmark", str(qa), "--lm-eval", "tiny_mc",
                                       "--lm-eval-include", str(tasks), "--samples", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    whole = json.loads(out.read_text())
    report = whole["lm_eval"]
    bench = whole["benchmarks"]["qa"]["systems"]
    systems = report["benchmarks"]["tiny_mc"]["systems"]
    control = next(s for s in systems if s.startswith("control"))
    force = next(iter(systems))

    # W&B, offline: the same run id, its summary holds the scores, an artifact the files
    seen = wandb_run(run_dir)
    assert seen["summary"]["evaluate/lm-eval/tiny_mc/control/coverage"] == pytest.approx(systems[control]["coverage"])
    assert seen["summary"]["evaluate/lm-eval/tiny_mc/task_force/majority"] == pytest.approx(systems[force]["majority"])
    member = systems[control]["members"][1]
    assert seen["summary"]["evaluate/lm-eval/tiny_mc/control/sample_1/acc"] == pytest.approx(
        member["metrics"]["acc,none"])
    seed_b = next(s for s in bench if s.startswith("seed ") and s.endswith("/b"))
    assert seen["summary"]["evaluate/qa/seed_b/coverage"] == pytest.approx(bench[seed_b]["coverage"])
    assert seen["summary"]["evaluate/qa/control/best_of_n"] == pytest.approx(bench[control]["best_of_n"])
    [artifact] = [a for a in seen["artifacts"] if a["name"].startswith("acdc-evaluation-")]
    assert {"eval.json", "eval-samples.jsonl", "evaluation.table.json"} <= set(artifact["files"])
    assert any(f.startswith("eval-lm-eval/control__sample-1/results_") for f in artifact["files"])

    # MLflow: metrics, the scores table and the files under evaluation/STAMP/, the run's status kept
    from mlflow import MlflowClient

    kept = json.loads((run_dir / "mlflow-run.json").read_text())
    assert kept["tracking_uri"] == f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=kept["tracking_uri"])
    run = client.get_run(kept["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["evaluate/lm-eval/tiny_mc/control/coverage"] == pytest.approx(systems[control]["coverage"])
    assert run.data.metrics["evaluate/lm-eval/tiny_mc/control/sample_1/acc"] == pytest.approx(
        member["metrics"]["acc,none"])
    assert run.data.metrics["evaluate/qa/task_force/majority"] == pytest.approx(bench[force]["majority"])
    stamp = run.data.tags["acdc.evaluated"]
    listed = {f.path for f in client.list_artifacts(kept["run_id"], f"evaluation/{stamp}")}
    assert {f"evaluation/{stamp}/{n}" for n in ("eval.json", "eval-samples.jsonl", "scores.json",
                                                "eval-lm-eval")} <= listed
    local = Path(client.download_artifacts(kept["run_id"], f"evaluation/{stamp}/eval-lm-eval", str(tmp_path / "dl")))
    names = [str(p) for p in local.rglob("*.json")]
    assert len(get_results_filenames(names)) == sum(s["n"] for s in systems.values())
    scores = json.loads((Path(client.download_artifacts(kept["run_id"], f"evaluation/{stamp}/scores.json",
                                                        str(tmp_path / "dl2")))).read_text())
    assert [r[:3] for r in scores["data"]] == ([["benchmark", "qa", s] for s in bench]
                                                + [["lm-eval", "tiny_mc", s] for s in systems])


def test_chat_templated_requests_answer_as_lm_evals_own_hf_model(lm_run, tiny_models, tmp_path):
    """With --apply_chat_template and a few-shot example, the acdc-engine model gets the same prompts as lm-eval's
    `hf` model and gives its log-likelihoods and greedy generations."""
    from lm_eval.tasks import TaskManager

    out = {}
    for model, args in (("hf", f"pretrained={tiny_models['a']},dtype=float32"),
                        ("acdc-engine", f"pretrained={tiny_models['a']},dtype=float32,cache_dir={tmp_path}")):
        out[model] = lm_eval.simple_evaluate(
            model=model, model_args=args, tasks=["tiny_gen", "tiny_mc"], apply_chat_template=True, num_fewshot=1,
            task_manager=TaskManager(include_path=str(lm_run / "tasks")), bootstrap_iters=0, log_samples=True,
            device="cpu")
    for task in ("tiny_gen", "tiny_mc"):
        theirs, ours = out["hf"]["samples"][task], out["acdc-engine"]["samples"][task]
        assert len(theirs) == len(ours) > 0
        for a, b in zip(theirs, ours):
            assert a["arguments"] == b["arguments"] and "<|im_start|>assistant" in str(a["arguments"])
            if task == "tiny_mc":
                for (lp_a, greedy_a), (lp_b, greedy_b) in zip((r[0] for r in a["resps"]), (r[0] for r in b["resps"])):
                    assert lp_b == pytest.approx(lp_a, abs=1e-3) and greedy_a == greedy_b
            else:
                assert a["resps"] == b["resps"]
        assert out["acdc-engine"]["results"][task] == out["hf"]["results"][task]
