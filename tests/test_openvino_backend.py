"""The openvino backend (plugins/generation/openvino_backend.py) against the transformers backend: the same greedy
answers in float32 on a tiny model and on the real seed, seeded sampling, its settings and errors, and
`acdc-engine evaluate --answer-backend openvino`, whose judge keeps a backend that scores likelihoods.

It needs the openvino extra and the export environment (scripts/setup_openvino.sh, which the test command runs)."""

import json
import shutil

import pytest
from click.testing import CliRunner

pytest.importorskip("openvino_genai", reason="bash scripts/setup_openvino.sh installs the openvino extra")

from acdc_engine.config import load_config  # noqa: E402
from acdc_engine.errors import AcdcError  # noqa: E402
from acdc_engine.plugin_manager import build_plugin_manager  # noqa: E402
from acdc_engine.plugins.generation.openvino_backend import OpenVinoBackend, default_optimum_cli  # noqa: E402
from acdc_engine.plugins.generation.transformers_backend import TransformersBackend  # noqa: E402
from acdc_engine.ui.cli import main  # noqa: E402
from conftest import check_greedy_answers, check_real_seed_answers, check_seeded_sampling, tiny_overrides  # noqa: E402
from test_evaluate import QA, tiny_run  # noqa: E402, F401  (tiny_run: a fixture)


@pytest.fixture(scope="module")
def pair(tiny_models, tmp_path_factory):
    """The transformers backend in float32 and the openvino backend as a config chooses it (one thread)."""
    config = load_config(None, tiny_overrides(tiny_models, tmp_path_factory.mktemp("ov"), **{
        "generation.backend": "openvino", "openvino.threads": 1}))
    ov = build_plugin_manager(["merge", "taskgen"]).hook.acdc_make_backend(config=config, model_dir=tiny_models["a"])
    assert isinstance(ov, OpenVinoBackend) and ov.threads == 1 and ov.compute_type == "f32"
    yield TransformersBackend(tiny_models["a"], dtype="float32"), ov
    ov.close()


def test_greedy_answers_equal_the_transformers_backend_in_float32(pair, tiny_models):
    ref, ov = pair
    check_greedy_answers(ref, ov, [tiny_models[m] / "model.safetensors" for m in ("b", "a")])  # b: swapped in


def test_sampling_is_reproducible_from_its_seed(pair, tiny_models):
    _, ov = pair
    ov.load_weights(tiny_models["a"] / "model.safetensors")
    check_seeded_sampling(ov)


def test_bad_settings_and_weights_get_one_line_errors(pair, tiny_models, tiny_config, tmp_path):
    _, ov = pair
    with pytest.raises(AcdcError, match="wide.*has shape"):
        ov.load_weights(tiny_models["wide"] / "model.safetensors")
    with pytest.raises(AcdcError, match="cannot read weights .*missing"):
        ov.load_weights(tmp_path / "missing" / "model.safetensors")
    with pytest.raises(AcdcError, match=r"precision = 'bf16' needs 2 or more threads"):
        OpenVinoBackend(tiny_models["a"], precision="bf16", threads=1)
    with pytest.raises(AcdcError, match=r"converts with .*nowhere/optimum-cli, which is missing: bash scripts/setup"):
        OpenVinoBackend(tiny_models["a"], optimum_cli=tmp_path / "nowhere" / "optimum-cli")
    broken = tmp_path / "broken"  # a checkpoint folder whose config names no architecture optimum knows
    shutil.copytree(tiny_models["a"], broken)
    (broken / "config.json").write_text('{"model_type": "no-such-model"}')
    with pytest.raises(AcdcError, match="openvino cannot convert .*broken"):
        OpenVinoBackend(broken, threads=1)
    with pytest.raises(AcdcError, match="openvino.precision"):
        tiny_config(**{"openvino.precision": "f16"})
    assert default_optimum_cli().is_file()  # the test command's set-up made the export environment


def test_evaluate_answers_with_openvino_as_with_the_run_backend(tiny_run, tmp_path, monkeypatch):
    """The same greedy answers for every greedy system; the best-of-N judge still scores likelihoods."""
    monkeypatch.setenv("ACDC_OPENVINO__THREADS", "1")
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(r) for r in QA) + "\n")
    results = {}
    for backend in ("", "openvino"):
        out = tmp_path / f"results-{backend or 'run'}.json"
        args = ["evaluate", str(tiny_run), "--benchmark", str(qa), "--samples", "2", "--max-new-tokens", "6",
                "--json", str(out)] + (["--answer-backend", backend] if backend else [])
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        results[backend] = json.loads(out.read_text())["benchmarks"]["qa"]["systems"]
    run, ov = results[""], results["openvino"]
    assert list(run) == list(ov)
    for name in run:
        if not name.startswith("control"):  # the control samples: draws of the same distribution, not the same
            assert [a["responses"] for a in run[name]["answers"]] == [a["responses"] for a in ov[name]["answers"]]
            assert [a["judge_pick"] for a in run[name]["answers"]] == [a["judge_pick"] for a in ov[name]["answers"]]
    bad = CliRunner().invoke(main, ["evaluate", str(tiny_run), "--benchmark", str(qa), "--answer-backend", "nope"])
    assert bad.exit_code == 3 and "no plugin provides the backend 'nope'" in bad.stderr


def test_the_real_seed_answers_as_with_the_transformers_backend(smollm2_dir):
    check_real_seed_answers(smollm2_dir, OpenVinoBackend)


def test_the_discovery_benchmark_answers_with_openvino_and_chooses_by_the_run_backend(tiny_models, tiny_config,
                                                                                      plugin_manager):
    import sys
    from pathlib import Path

    from acdc_engine.evaluation.outside_benchmarks import Item

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from discovery import Answerer

    items = [Item("1", "What is 2 + 3?", ("5",), "numeric"),
             Item("2", "Which is a fruit?\nA. car\nB. apple\nC. stone", ("apple",), "choice",
                  ("car", "apple", "stone"))]
    weights = tiny_models["b"] / "model.safetensors"
    verdicts = {}
    for answer_backend in ("", "openvino"):
        config = tiny_config(**{"generation.answer_backend": answer_backend, "openvino.threads": 1})
        answerer = Answerer(plugin_manager.hook, config, tiny_models["a"], items)
        try:
            raw = []
            answerer.backend.generate = (lambda generate: lambda prompts, **kw: raw.append(generate(prompts, **kw))
                                         or raw[-1])(answerer.backend.generate)
            verdicts[answer_backend] = (answerer(weights, 0.0, 0, 1, items[:1]), raw,
                                        answerer.choose(weights, 0.0, 0), answerer.decoding)
        finally:
            answerer.close()
    run, ov = verdicts[""], verdicts["openvino"]
    assert run[:3] == ov[:3]  # the same generated answers, verdicts and likelihood picks
    assert run[3] == "transformers/float32" and ov[3] == "openvino/f32+transformers/float32"
