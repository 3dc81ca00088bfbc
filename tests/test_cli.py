"""The command line: one-line errors on stderr and exit statuses, plugin listing, --version and -h, config show
and ACDC_* variables, status --json on a real tiny run, seeds by Hub id from the local Hugging Face cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "acdc_engine", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


def test_unknown_plugin_lists_the_known_ones(tmp_path):
    result = cli("--plugins", "merge,nope", cwd=tmp_path)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.strip() == ("error: unknown plugin 'nope'; known plugins: judge-overlap, llm-gibberish, "
                                     "llm-judge, merge, mlflow, novelty, scientist, taskgen, wandb")


def test_bad_config_value_names_the_field(tmp_path):
    result = cli("run", "--set", "evolution.dns_k=0", cwd=tmp_path)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.strip() == (
        "error: config field evolution.dns_k: Input should be greater than or equal to 1 (got 0)")


def test_unknown_crossover_names_the_known_ones(tmp_path, tiny_models):
    from conftest import tiny_overrides

    sets = [a for s in tiny_overrides(tiny_models, tmp_path, **{"evolution.crossover": "blend"}) for a in ("--set", s)]
    result = cli("run", *sets, cwd=tmp_path)
    assert result.returncode == 3
    from acdc_engine.plugins.merge.merge_plugin import acdc_merge_methods

    known = ", ".join(sorted(acdc_merge_methods()))
    assert result.stderr.strip() == f"error: unknown crossover method 'blend'; known: {known}"
    assert "linear" in known and "della" in known


def test_missing_run_dir_is_named(tmp_path):
    result = cli("status", str(tmp_path / "nope"))
    assert result.returncode == 3 and "is not a run directory" in result.stderr and result.stdout == ""


def test_plugins_lists_builtins_with_their_hooks():
    result = cli("plugins")
    assert result.returncode == 0
    for name in ("merge", "taskgen", "transformers", "sandbox", "smollm2", "acdc_merge_methods"):
        assert name in result.stdout
    merges = next(line for line in result.stdout.splitlines() if line.startswith("crossover (merge) methods"))
    for name in ("linear", "ties", "della", "model_stock", "nuslerp", "karcher", "sce", "nearswap", "arcee_fusion"):
        assert name in merges.split(": ", 1)[1].split(", ")  # mergekit's methods by name


def test_two_plugins_offering_one_operator_name_are_refused():
    from acdc_engine.errors import AcdcError
    from acdc_engine.hookspecs import hookimpl
    from acdc_engine.models.operators import MergeMethod, OperatorRegistry
    from acdc_engine.plugin_manager import build_plugin_manager

    class Clash:
        @hookimpl
        def acdc_merge_methods(self):
            return {"linear": MergeMethod("linear", lambda *a, **k: None, lambda *a: {})}

    pm = build_plugin_manager(["merge"], extra=[Clash()])
    with pytest.raises(AcdcError, match="two plugins offer an operator named 'linear'; rename one of them"):
        OperatorRegistry(pm.hook)


def test_a_plugin_command_named_like_the_engines_own_is_refused_in_one_line(monkeypatch):
    import click

    from click.testing import CliRunner

    import acdc_engine.ui.cli as cli_module

    monkeypatch.setattr(cli_module, "plugin_commands", lambda: {"status": (click.Command("status"), "shadow")})
    result = CliRunner().invoke(cli_module.main, ["status", "x"])
    assert result.exit_code == 3
    assert result.output.strip() == ("error: plugin 'shadow' adds a command 'status', which is the engine's own; "
                                     "rename it")


# --- CLI conventions: --version, -h, exit statuses, config show, ACDC_* variables, Hub ids ----------------

def test_version_and_dash_h_on_every_command():
    from importlib.metadata import version

    from click.testing import CliRunner

    import acdc_engine
    from acdc_engine.ui.cli import main

    runner = CliRunner()
    shown = runner.invoke(main, ["--version"])
    assert shown.exit_code == 0 and shown.output == f"acdc-engine {acdc_engine.__version__}\n"
    assert acdc_engine.__version__ == version("acdc-engine")
    top = runner.invoke(main, ["-h"])
    assert top.exit_code == 0 and top.output == runner.invoke(main, ["--help"]).output
    assert "Exit status:" in top.output and "  3    bad input" in top.output
    ctx = main.make_context("acdc-engine", ["plugins"])
    commands = [[name] for name in main.list_commands(ctx)] + [["config", "show"]]
    assert ["forge"] in commands and ["config"] in commands  # a plugin's command too
    for command in commands:
        result = runner.invoke(main, [*command, "-h"], prog_name="acdc-engine")
        assert result.exit_code == 0 and result.output.startswith(f"Usage: acdc-engine {' '.join(command)} "), \
            (command, result.output)


def test_exit_statuses_usage_input_runtime_interrupted(tmp_path, monkeypatch):
    import resource
    import signal

    import click
    from click.testing import CliRunner

    import acdc_engine.ui.cli as cli_module

    usage = cli("status", cwd=tmp_path)  # a missing argument
    assert (usage.returncode, usage.stdout) == (2, "") and "Missing argument 'RUN_DIR'" in usage.stderr
    assert cli("--no-such-option", cwd=tmp_path).returncode == 2
    bad = cli("status", str(tmp_path / "nope"), cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (3, "") and bad.stderr.startswith("error: ")

    def no_files():  # the kernel refuses every write, as a full disk would
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    runtime = subprocess.run([sys.executable, "-m", "acdc_engine", "run", "--run-dir", str(tmp_path / "run"),
                              "--set", "models.forge_missing=false"], capture_output=True, text=True, timeout=300,
                             cwd=tmp_path, preexec_fn=no_files)
    assert runtime.returncode == 1, runtime.stdout + runtime.stderr
    assert runtime.stdout == "" and len(runtime.stderr.splitlines()) == 1 and "Traceback" not in runtime.stderr
    assert runtime.stderr.startswith("error: ")

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "plugin_commands",
                        lambda: {"wait": (click.Command("wait", callback=interrupted), "p")})
    result = CliRunner().invoke(cli_module.main, ["wait"])
    assert result.exit_code == 130 and result.stderr == "interrupted\n"


def test_config_show_prints_the_resolved_config_as_toml_that_reads_back(tmp_path):
    from acdc_engine.config import load_config

    env = {**os.environ, "ACDC_RUN__GENERATIONS": "9", "acdc_models__seeds": '["x/a", "x/b"]',
           "ACDC_PROGRESS_EVERY_S": "5"}  # an ACDC_ variable without "__" is not config
    shown = cli("config", "show", "--set", "tasks.active_cap=30", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert "[run]\ngenerations = 9\n" in shown.stdout and 'seeds = ["x/a", "x/b"]' in shown.stdout
    (tmp_path / "shown.toml").write_text(shown.stdout)
    expected = load_config(None, ["tasks.active_cap=30", "run.generations=9", "models.seeds=['x/a', 'x/b']"],
                           environ={})
    assert load_config(tmp_path / "shown.toml", environ={}) == expected
    as_json = cli("config", "show", "--config", str(tmp_path / "shown.toml"), "--json", cwd=tmp_path)
    assert json.loads(as_json.stdout) == expected.model_dump(mode="json")
    # --set beats the environment, which beats --config
    beaten = cli("config", "show", "--json", "--config", str(tmp_path / "shown.toml"), "--set", "run.generations=4",
                 cwd=tmp_path, env={**env, "ACDC_RUN__GENERATIONS": "6", "ACDC_TASKS__ACTIVE_CAP": "31"})
    facts = json.loads(beaten.stdout)
    assert (facts["run"]["generations"], facts["tasks"]["active_cap"]) == (4, 31)
    for name, value, needle in (
            ("ACDC_RUN__GENERATIONS", "many", "config field run.generations: Input should be a valid integer"),
            ("ACDC_RUN__GENERATINS", "5", "config field run.generatins: Extra inputs are not permitted"),
            ("ACDC_NOSUCH__KEY", "5", "environment variable ACDC_NOSUCH__KEY: config has no section [nosuch]"),
            ("ACDC_MODELS__SEEDS", "[a", "environment variable ACDC_MODELS__SEEDS: not JSON")):
        done = cli("config", "show", cwd=tmp_path, env={**os.environ, name: value})
        assert (done.returncode, done.stdout) == (3, ""), done.stderr
        assert done.stderr.startswith(f"error: {needle}") and name in done.stderr
        assert len(done.stderr.splitlines()) == 1


# --- status --json on a real run (DNS: the fittest member's score is infinite), seeds by Hub id ---------

def hub_cache(root: Path, models: dict[str, Path]) -> Path:
    """A Hugging Face cache at ``root`` holding each model folder under its Hub id, laid out as
    huggingface_hub lays it out (blobs, a snapshot of symbolic links, refs/main)."""
    import hashlib

    for repo_id, folder in models.items():
        repo = root / f"models--{repo_id.replace('/', '--')}"
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        snapshot = repo / "snapshots" / commit
        (repo / "blobs").mkdir(parents=True)
        snapshot.mkdir(parents=True)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
        for f in sorted(folder.iterdir()):
            blob = hashlib.sha256(f.read_bytes()).hexdigest()
            shutil.copy(f, repo / "blobs" / blob)
            (snapshot / f.name).symlink_to(Path("..", "..", "blobs", blob))
    return root


@pytest.fixture(scope="module")
def dns_run(tiny_models, tmp_path_factory):
    """A real one-generation run with the AC/DC paper's DNS archive, its seeds named by Hub id and found in a
    temporary Hugging Face cache; (run folder, environment)."""
    from conftest import tiny_overrides

    root = tmp_path_factory.mktemp("dns")
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache(root / "hub", {"acdc-tests/tiny-a": tiny_models["a"],
                                                                        "acdc-tests/tiny-b": tiny_models["b"]})),
           "HF_HUB_OFFLINE": "1"}
    overrides = tiny_overrides(tiny_models, root, **{
        "run.generations": 1, "evolution.archive": "dns", "models.seeds": ["acdc-tests/tiny-a", "acdc-tests/tiny-b"],
        "models.base": "acdc-tests/tiny-a"})
    run = root / "run"
    done = cli("run", "--run-dir", str(run), *[a for o in overrides for a in ("--set", o)], cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return run, env


def strict_json(text: str):
    """``json.loads`` refusing NaN, Infinity and -Infinity, as JavaScript's JSON.parse does."""
    def refuse(name):
        raise ValueError(f"not standard JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_status_json_is_standard_json_with_a_schema_version_and_the_config(dns_run):
    from acdc_engine.ui.status import SCHEMA_VERSION

    run, env = dns_run
    done = cli("status", "--json", str(run), env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    facts = strict_json(done.stdout)
    assert facts["schema_version"] == SCHEMA_VERSION == 1
    shown = cli("config", "show", "--json", str(run))
    assert facts["config"] == strict_json(shown.stdout) and facts["config"]["evolution"]["archive"] == "dns"
    assert set(facts["seeds"]) == {"acdc-tests/tiny-a", "acdc-tests/tiny-b"}  # named by Hub id
    infinite = [row for row in facts["archive"] if row["score"] is None]
    assert infinite and all(row["score_reason"].startswith("Infinity: ") for row in infinite)
    assert {"path": "/archive/0/score", "value": "Infinity"} in facts["not_finite"]  # the fittest comes first
    for place in facts["not_finite"]:  # each a JSON Pointer to a null
        node = facts
        for part in place["path"].split("/")[1:]:
            node = node[int(part)] if isinstance(node, list) else node[part.replace("~1", "/").replace("~0", "~")]
        assert node is None and place["value"] in ("Infinity", "-Infinity", "NaN")
    assert cli("config", "show", str(run), "--set", "run.seed=1").returncode == 2  # a stored config is as stored


def test_status_json_schema_is_documented():
    """Every top-level field of the document is in docs/architecture.md's schema section, and no other."""
    from acdc_engine.ui.status import status_document

    import re

    doc = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    section = doc.split("### `status --json`", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))
    fake = {k: None for k in ("run_dir", "last_generation", "generations", "plugins", "seeds", "archive", "tasks",
                              "task_reasons", "per_generation", "disk", "task_force", "config")} | {"archive": []}
    assert documented == set(status_document(fake))
    assert "`schema_version` | 1" in section or "| `schema_version` | integer" in section


def test_a_hub_id_missing_from_the_cache_is_one_line_naming_it(tmp_path):
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty-hub"), "HF_HUB_OFFLINE": "1"}
    done = cli("run", "--run-dir", str(tmp_path / "run"), "--set", "models.forge_missing=false",
               "--set", "models.seeds=['acdc-tests/not-cached']", "--set", "models.base='acdc-tests/not-cached'",
               cwd=tmp_path, env=env)
    assert (done.returncode, done.stdout) == (3, ""), done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"error: seed model acdc-tests/not-cached is neither a folder here nor a Hugging Face Hub model in the "
        f"local cache ({tmp_path / 'empty-hub'}); download it first (hf download acdc-tests/not-cached) or give a "
        "checkpoint folder"]
    assert not (tmp_path / "run").exists()
