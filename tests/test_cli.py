"""The command line: one-line errors, plugin listing, run/status on tiny models."""

from __future__ import annotations

import subprocess
import sys

import pytest


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "acdc_engine", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_unknown_plugin_lists_the_known_ones(tmp_path):
    result = cli("--plugins", "merge,nope", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.strip() == ("error: unknown plugin 'nope'; known plugins: judge-overlap, llm-gibberish, "
                                     "llm-judge, merge, mlflow, novelty, scientist, taskgen, wandb")


def test_bad_config_value_names_the_field(tmp_path):
    result = cli("run", "--set", "evolution.dns_k=0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.strip() == (
        "error: config field evolution.dns_k: Input should be greater than or equal to 1 (got 0)")


def test_unknown_crossover_names_the_known_ones(tmp_path, tiny_models):
    from conftest import tiny_overrides

    sets = [a for s in tiny_overrides(tiny_models, tmp_path, **{"evolution.crossover": "blend"}) for a in ("--set", s)]
    result = cli("run", *sets, cwd=tmp_path)
    assert result.returncode == 2
    from acdc_engine.plugins.merge import acdc_merge_methods

    known = ", ".join(sorted(acdc_merge_methods()))
    assert result.stdout.strip() == f"error: unknown crossover method 'blend'; known: {known}"
    assert "linear" in known and "della" in known


def test_missing_run_dir_is_named(tmp_path):
    result = cli("status", str(tmp_path / "nope"))
    assert result.returncode == 2 and "is not a run directory" in result.stdout


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
    from acdc_engine.operators import MergeMethod, OperatorRegistry
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

    import acdc_engine.cli as cli_module

    monkeypatch.setattr(cli_module, "plugin_commands", lambda: {"status": (click.Command("status"), "shadow")})
    result = CliRunner().invoke(cli_module.main, ["status", "x"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: plugin 'shadow' adds a command 'status', which is the engine's own; "
                                     "rename it")
