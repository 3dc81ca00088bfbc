"""The layering rule: the engine never imports a plugin; plugins import only ``acdc_engine.api``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import acdc_engine.api as api

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module an ``import`` or ``from ... import`` names in a file, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "acdc_engine":  # from acdc_engine import plugins / config
                found += [(node.lineno, f"acdc_engine.{a.name}") for a in node.names]
    return found


def sources(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py")) if "build" not in p.parts]


def test_the_rule_sees_imports_in_functions_and_from_the_package():
    tree = "def f():\n    from acdc_engine import plugins\n    import acdc_engine.plugins.sandbox\n"
    path = Path(__file__).with_name("_probe_imports.py")
    path.write_text(tree)
    try:
        assert [m for _, m in imported_modules(path)] == ["acdc_engine", "acdc_engine.plugins",
                                                           "acdc_engine.plugins.sandbox"]
    finally:
        path.unlink()


@pytest.mark.parametrize("path", sources("engine", "archives"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_does_not_import_plugins(path):
    bad = [(line, m) for line, m in imported_modules(path) if m == "acdc_engine.plugins"
           or m.startswith("acdc_engine.plugins.")]
    assert not bad, f"{path.relative_to(ROOT)} imports a plugin: {bad} (ask for it through a hook)"


def allowed_for_plugins(module: str, own: str) -> bool:
    if module != "acdc_engine" and not module.startswith("acdc_engine."):
        return True
    return module == "acdc_engine.api" or module == own or module.startswith(own + ".")


@pytest.mark.parametrize("path", sources("plugins"), ids=lambda p: str(p.relative_to(ROOT)))
def test_built_in_plugins_import_only_the_public_api(path):
    bad = [(line, m) for line, m in imported_modules(path) if not allowed_for_plugins(m, "acdc_engine.plugins")]
    assert not bad, f"{path.relative_to(ROOT)} imports engine internals: {bad} (use acdc_engine.api)"


@pytest.mark.parametrize("path", sources("examples", "tests/plugin_packages"), ids=lambda p: str(p.relative_to(ROOT)))
def test_third_party_examples_import_only_the_public_api(path):
    bad = [(line, m) for line, m in imported_modules(path) if not allowed_for_plugins(m, "acdc_engine.api")]
    assert not bad, f"{path.relative_to(ROOT)} imports acdc_engine internals: {bad} (use acdc_engine.api)"


def test_the_public_api_exports_what_it_lists():
    assert set(api.__all__) == {n for n in vars(api) if not n.startswith("_")}


def test_the_plugin_guide_names_every_export_and_nothing_outside_the_api():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    missing = [name for name in api.__all__ if f"`{name}" not in guide]
    assert not missing, f"docs/plugins.md does not name {missing}"
    outside = {m for m in re.findall(r"acdc_engine\.[A-Za-z_.]+", guide) if not m.startswith("acdc_engine.api")}
    assert not outside, f"docs/plugins.md sends plugin authors outside acdc_engine.api: {sorted(outside)}"


def test_the_contract_does_not_import_the_store_the_report_the_loop_or_the_plugin_manager():
    loaded = subprocess.run([sys.executable, "-c", "import sys, acdc_engine.api; print(' '.join(sys.modules))"],
                            capture_output=True, text=True, check=True).stdout.split()
    inner = {"acdc_engine.store", "acdc_engine.report", "acdc_engine.loop", "acdc_engine.evaluate",
             "acdc_engine.lineage", "acdc_engine.cli", "acdc_engine.view", "acdc_engine.plugin_manager"}
    assert not inner & set(loaded), f"acdc_engine.api imports {sorted(inner & set(loaded))}"
