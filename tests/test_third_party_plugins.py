"""Third-party plugins: real packages installed with pip, found by entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from acdc_engine.plugin_manager import build_plugin_manager
from conftest import tiny_overrides

PACKAGES = Path(__file__).parent / "plugin_packages"


def install(package: str, target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PACKAGES / package)],
        check=True, capture_output=True,
    )


def cli(args, env_extra, cwd):
    env = {**os.environ, "COLUMNS": "250", **env_extra}
    return subprocess.run([sys.executable, "-m", "acdc_engine", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    install("probe", root / "good")
    install("broken", root / "bad")
    return root


def test_installed_plugin_is_listed_and_its_hook_is_called_in_a_run(site, tiny_models, tmp_path):
    log = tmp_path / "events.log"
    env = {"PYTHONPATH": str(site / "good"), "ACDC_PROBE_LOG": str(log)}
    listing = cli(["plugins"], env, tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "probe" in listing.stdout and "entry point: acdc-probe-plugin" in listing.stdout
    args = ["run"] + [a for o in tiny_overrides(tiny_models, tmp_path, **{"run.generations": 1}) for a in ("--set", o)]
    result = cli(args, env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = log.read_text().split()
    # one plugin context for the whole run, preparation included: configured once, unconfigured once, at the ends
    assert kinds[:2] == ["configure", "run_started"] and kinds[-2:] == ["run_finished", "unconfigure"]
    assert kinds.count("configure") == kinds.count("unconfigure") == 1 and "generation_committed" in kinds


def test_installed_plugin_has_its_own_config_section(site, tiny_models, tmp_path):
    env = {"PYTHONPATH": str(site / "good"), "ACDC_PROBE_LOG": str(tmp_path / "events.log")}
    reference = cli(["config-reference"], env, tmp_path)
    assert "## [probe] (a plugin's own section)" in reference.stdout and "Written before each event kind." in \
        reference.stdout
    overrides = tiny_overrides(tiny_models, tmp_path, **{"run.generations": 0})
    bad = cli(["run", "--set", "probe.prefix=far-too-long"] + [a for o in overrides for a in ("--set", o)],
              env, tmp_path)
    assert bad.returncode == 3 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: config field probe.prefix: String should have at most 8 characters"), bad.stderr
    unknown = cli(["run", "--set", "probe.colour=red"], env, tmp_path)
    assert unknown.returncode == 3 and "config field probe.colour: Extra inputs are not permitted" in unknown.stderr
    good = cli(["run", "--set", "probe.prefix=p:"] + [a for o in overrides for a in ("--set", o)], env, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert (tmp_path / "events.log").read_text().split()[:2] == ["p:configure", "p:run_started"]
    without = cli(["run", "--set", "probe.prefix=p:"], {}, tmp_path)  # the plugin is not installed
    assert without.returncode == 3 and "config section [probe] is unknown" in without.stderr


def test_installed_plugin_adds_a_command(site, tmp_path):
    env = {"PYTHONPATH": str(site / "good"), "ACDC_PROBE_LOG": str(tmp_path / "events.log")}
    listing = cli(["--help"], env, tmp_path)
    assert " probe " in listing.stdout and " forge " in listing.stdout  # forge is a built-in plugin's command
    ran = cli(["--plugins", "merge", "probe", "--set", "probe.prefix=p:"], env, tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.strip() == "prefix='p:' plugins=merge configured=True"
    failed = cli(["probe", "--fail"], env, tmp_path)
    assert failed.returncode == 3 and failed.stderr.strip() == "error: probe failed on purpose"
    assert "Traceback" not in failed.stderr
    assert cli(["probe"], {}, tmp_path).returncode == 2  # not installed: no such command (a usage error)


def test_plugin_that_fails_on_import_is_named_in_one_line(site, tmp_path):
    result = cli(["run", "--set", "run.generations=0"], {"PYTHONPATH": str(site / "bad")}, tmp_path)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: plugin 'broken' failed to load: RuntimeError: this plugin is broken on purpose"]
    assert "Traceback" not in result.stderr


def test_autoload_can_be_turned_off_and_a_plugin_named_instead(site, tmp_path, monkeypatch):
    env = {"PYTHONPATH": f"{site / 'good'}:{site / 'bad'}"}
    listing = cli(["plugins"], env, tmp_path)
    assert listing.returncode == 0  # the listing shows the broken plugin's error instead of failing
    assert "failed to load" in listing.stdout
    monkeypatch.syspath_prepend(str(site / "good"))
    monkeypatch.syspath_prepend(str(site / "bad"))
    monkeypatch.setenv("ACDC_ENGINE_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = build_plugin_manager(["merge", "taskgen", "probe"])
    assert pm.has_plugin("probe") and not pm.has_plugin("broken")
