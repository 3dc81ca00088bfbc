"""The layering rule: the engine never imports a plugin; plugins import only ``acdc_engine.api``.

Inside each folder laid over ``acdc_engine`` (``engine/``, ``archives/``, ``plugins/``) imports are relative,
so that a reader and an import-reading tool follow them to a file; across folders they are absolute.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import acdc_engine.api as api

ROOT = Path(__file__).resolve().parents[1]
#: The folders laid over the import root by ``package-dir`` (pyproject.toml), outermost last.
FOLDERS = {"archives": "acdc_engine.archives", "plugins": "acdc_engine.plugins", "engine": "acdc_engine"}


def package_of(path: Path) -> str | None:
    """The package a file of this repository belongs to (``engine/run/loop.py``: ``acdc_engine.run``), if any."""
    rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else None
    if rel is None or rel.parts[0] not in FOLDERS:
        return None
    return ".".join([FOLDERS[rel.parts[0]], *rel.parts[1:-1]])


def absolute(module: str | None, level: int, package: str | None) -> str:
    """The absolute name of ``from <level dots><module> import``, seen from ``package``."""
    if level == 0:
        return module or ""
    if package is None or level > len(package.split(".")):
        raise ValueError(f"relative import beyond the top-level package (from {package})")
    parts = package.split(".")
    base = parts[: len(parts) - level + 1]
    return ".".join([*base, *([module] if module else [])])


def imports(path: Path) -> list[tuple[int, str, bool]]:
    """Every module an ``import`` or ``from ... import`` names in a file, anywhere in it, made absolute, with
    whether it was written relative."""
    package, found = package_of(path), []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, False) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = absolute(node.module, node.level, package)
            if module:
                found.append((node.lineno, module, node.level > 0))
            if node.level or module == "acdc_engine":  # from acdc_engine import plugins / from .. import store
                found += [(node.lineno, f"{module}.{a.name}", node.level > 0) for a in node.names]
    return found


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module an import names in a file (relative ones resolved)."""
    return [(line, module) for line, module, _ in imports(path)]


def folder_of(module: str) -> str | None:
    """The folder an ``acdc_engine`` module lives in (``acdc_engine.run.loop``: ``engine``)."""
    for folder, root in FOLDERS.items():
        if module == root or module.startswith(root + "."):
            return folder
    return None


def sources(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py")) if "build" not in p.parts]


def test_the_rule_sees_imports_in_functions_and_from_the_package():
    tree = "def f():\n    from acdc_engine import plugins\n    import acdc_engine.plugins.sandbox.sandbox_plugin\n"
    path = Path(__file__).with_name("_probe_imports.py")
    path.write_text(tree)
    try:
        assert [m for _, m in imported_modules(path)] == ["acdc_engine", "acdc_engine.plugins",
                                                           "acdc_engine.plugins.sandbox.sandbox_plugin"]
    finally:
        path.unlink()


def test_the_rule_resolves_relative_imports():
    probe = ROOT / "engine" / "run" / "_probe_imports.py"
    probe.write_text("from ..store import RunStore\ndef f():\n    from .. import plugins\n    from . import ledger\n")
    try:
        assert sorted(m for _, m in imported_modules(probe)) == [
            "acdc_engine", "acdc_engine.plugins", "acdc_engine.run", "acdc_engine.run.ledger", "acdc_engine.store",
            "acdc_engine.store.RunStore"]
        probe.write_text("from ... import plugins\n")  # above the import root: no file to follow
        with pytest.raises(ValueError, match="beyond"):
            imported_modules(probe)
    finally:
        probe.unlink()


@pytest.mark.parametrize("path", sources("engine", "archives"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_does_not_import_plugins(path):
    bad = [(line, m) for line, m in imported_modules(path) if m == "acdc_engine.plugins"
           or m.startswith("acdc_engine.plugins.")]
    assert not bad, f"{path.relative_to(ROOT)} imports a plugin: {bad} (ask for it through a hook)"


@pytest.mark.parametrize("path", sources("engine", "archives", "plugins"), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_inside_a_folder_are_relative(path):
    folder = path.relative_to(ROOT).parts[0]
    bad = [(line, m) for line, m, relative in imports(path) if not relative and folder_of(m) == folder]
    assert not bad, (f"{path.relative_to(ROOT)} imports its own folder by the absolute name: {bad} "
                     "(write it relative, e.g. from ..store import RunStore)")


def test_no_two_modules_share_a_name():
    """A module's name says which file it is: no other module, and no folder but its own, is called the same
    (``engine/seeds.py`` beside ``plugins/forge/seeds.py`` sent readers to the wrong one)."""
    modules = [p for p in sources("engine", "archives", "plugins") if p.stem not in ("__init__", "__main__")]
    by_name: dict[str, list[str]] = {}
    for path in modules:
        by_name.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    assert not {n: ps for n, ps in by_name.items() if len(ps) > 1}
    folders = {d for f in ("engine", "archives", "plugins") for d in (ROOT / f).rglob("*")
               if d.is_dir() and d.name != "__pycache__"} | {d for d in ROOT.iterdir() if d.is_dir()}
    clash = [(str(p.relative_to(ROOT)), str(d.relative_to(ROOT))) for p in modules for d in folders
             if d.name == p.stem and d != p.parent]
    assert not clash, f"modules named like a folder elsewhere: {clash}"


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
    inner = {"acdc_engine.store", "acdc_engine.ui.report", "acdc_engine.run.loop", "acdc_engine.evaluation.systems",
             "acdc_engine.models.lineage", "acdc_engine.ui.cli", "acdc_engine.ui.live_view",
             "acdc_engine.plugin_manager"}
    assert not inner & set(loaded), f"acdc_engine.api imports {sorted(inner & set(loaded))}"
