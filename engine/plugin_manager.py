"""Finds plugins (built-in and entry points) and registers the chosen ones.

Built-in plugins live under ``acdc_engine.plugins``; some are always
on (the backend, the sandbox scorer, seed providers, the criterion and
descriptors), the rest are chosen with ``--plugins``. Third-party plugins are
found through the entry-point group ``acdc_engine`` and registered the same
way: all of them by default (like pytest), or only those named in
``--plugins`` when ``ACDC_ENGINE_DISABLE_PLUGIN_AUTOLOAD`` is set.

A plugin is a module (its ``acdc_*`` functions are its hooks) or a class: each plugin manager registers
a fresh instance of a class, so what a plugin keeps between hooks (its config, the hook relay, a
tracker) lives on that instance, one per plugin context, and never in module globals.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .errors import AcdcError

ENTRY_POINT_GROUP = "acdc_engine"
AUTOLOAD_OFF_ENV = "ACDC_ENGINE_DISABLE_PLUGIN_AUTOLOAD"

#: Built-in plugins that every run registers: a module, or ``module:Class`` (see the module docstring).
ALWAYS_ON = {
    "smollm2": "acdc_engine.plugins.seed_models.smollm2",
    "local-seeds": "acdc_engine.plugins.seed_models.local_seeds",
    "forge": "acdc_engine.plugins.forge",  # after local-seeds, so asked first for seeds (pluggy is LIFO)
    "transformers": "acdc_engine.plugins.generation.transformers_backend",
    "vllm": "acdc_engine.plugins.generation.vllm_backend",
    "ctranslate2": "acdc_engine.plugins.generation.ctranslate2_backend",
    "openvino": "acdc_engine.plugins.generation.openvino_backend",
    "sandbox": "acdc_engine.plugins.sandbox.sandbox_plugin:Sandbox",
    "gibberish": "acdc_engine.plugins.selection.gibberish",
    "skills": "acdc_engine.plugins.selection.skills",
    "embeddings": "acdc_engine.plugins.llm.embeddings:Embeddings",
    "capabilities": "acdc_engine.plugins.selection.capability_rates",
}
#: Built-in plugins chosen with ``--plugins``.
OPTIONAL = {
    "merge": "acdc_engine.plugins.merge.merge_plugin",
    "taskgen": "acdc_engine.plugins.taskgen",
    "judge-overlap": "acdc_engine.plugins.sandbox.judge_overlap",
    "scientist": "acdc_engine.plugins.scientist:ScientistPlugin",
    "novelty": "acdc_engine.plugins.llm.novelty:Novelty",
    "llm-gibberish": "acdc_engine.plugins.llm.llm_gibberish:LLMGibberish",
    "llm-judge": "acdc_engine.plugins.llm.llm_judge:LLMJudge",
    "wandb": "acdc_engine.plugins.tracking.wandb_tracking:WandbPlugin",
    "mlflow": "acdc_engine.plugins.tracking.mlflow_tracking:MlflowPlugin",
}


@dataclass
class PluginInfo:
    """One plugin found on this installation."""

    name: str
    origin: str  # "built-in (always on)", "built-in", or "entry point: <dist>"
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    operators: dict[str, list[str]] = field(default_factory=dict)  # "merge" / "mutation" -> names offered


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _instance(plugin: Any) -> Any:
    """What is registered for a plugin: a module as it is, a class as a fresh instance."""
    return plugin() if isinstance(plugin, type) else plugin


def _load(name: str, loader) -> Any:
    """The entry point's plugin (see :func:`_instance`); a broken one is named in one line."""
    try:
        return _instance(loader())
    except Exception as exc:  # a broken plugin is named, not a traceback wall
        raise AcdcError(f"plugin {name!r} failed to load: {type(exc).__name__}: {exc}") from None


def _builtin(path: str) -> Any:
    """The built-in plugin at ``path``, ``module`` or ``module:Class`` (see :func:`_instance`)."""
    module, _, attr = path.partition(":")
    plugin = importlib.import_module(module)
    return _instance(getattr(plugin, attr) if attr else plugin)


def _hooks_of(plugin: Any) -> list[str]:
    return sorted(n for n in dir(plugin) if n.startswith("acdc_") and callable(getattr(plugin, n)))


def _operators_of(plugin: Any) -> dict[str, list[str]]:
    """The merge and mutation operator names a plugin offers."""
    out = {}
    for kind, hook in (("merge", "acdc_merge_methods"), ("mutation", "acdc_mutation_methods")):
        if callable(getattr(plugin, hook, None)):
            out[kind] = sorted(getattr(plugin, hook)() or {})
    return out


@lru_cache(maxsize=None)
def _installed(entry_point_names: tuple[str, ...]) -> pluggy.PluginManager:
    """A plugin manager with every installed plugin, enabled or not: for what plugins declare before a
    config exists (config sections, commands)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, path in {**ALWAYS_ON, **OPTIONAL}.items():
        pm.register(_builtin(path), name=name)
    eps = _entry_points()
    for name in entry_point_names:
        try:
            pm.register(_load(name, eps[name].load), name=name)
        except (AcdcError, ValueError):  # a broken or doubly named plugin is named when it is enabled
            continue
    return pm


def _declared(hook_name: str, name_of) -> tuple[dict, dict[str, str]]:
    """Every installed plugin's answers to a collecting hook, by name; a name two plugins use is an error."""
    found: dict = {}
    owners: dict[str, str] = {}
    for impl in getattr(_installed(tuple(sorted(_entry_points()))).hook, hook_name).get_hookimpls():
        items = impl.function()
        for name, value in (items.items() if isinstance(items, dict) else ((name_of(v), v) for v in items or ())):
            if name in found:
                raise AcdcError(f"plugins {owners[name]!r} and {impl.plugin_name!r} both declare {name!r} "
                                f"({hook_name}); rename one")
            found[name], owners[name] = value, impl.plugin_name
    return found, owners


def config_sections() -> dict[str, type]:
    """The config sections every installed plugin declares (``acdc_config_sections``), enabled or not."""
    return _declared("acdc_config_sections", None)[0]


def plugin_commands() -> dict[str, tuple[Any, str]]:
    """The commands every installed plugin adds (``acdc_commands``), by name, with their plugin's name."""
    commands, owners = _declared("acdc_commands", lambda command: command.name)
    return {name: (command, owners[name]) for name, command in commands.items()}


def autoload_enabled() -> bool:
    return os.environ.get(AUTOLOAD_OFF_ENV, "").lower() not in {"1", "true", "yes"}


def build_plugin_manager(selected: list[str], extra: list[Any] = ()) -> pluggy.PluginManager:
    """A plugin manager with the always-on plugins, ``selected`` and entry points.

    ``extra`` objects (e.g. the live view) are registered as well. An unknown
    name raises an error listing the known ones.
    """
    eps = _entry_points()
    known = sorted({*OPTIONAL, *eps})
    unknown = [n for n in selected if n not in OPTIONAL and n not in eps]
    if unknown:
        raise AcdcError(f"unknown plugin {unknown[0]!r}; known plugins: {', '.join(known)}")
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, path in {**ALWAYS_ON, **{n: OPTIONAL[n] for n in selected if n in OPTIONAL}}.items():
        pm.register(_builtin(path), name=name)
    wanted = set(eps) if autoload_enabled() else {n for n in selected if n in eps}
    for name in sorted(wanted):
        pm.register(_load(name, eps[name].load), name=name)
    for obj in extra:
        pm.register(obj)
    try:
        pm.check_pending()  # a hook implementation with no matching hook (a misspelt name) is an error
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        hook = next((h for h in _hooks_of(exc.plugin) if not hasattr(hookspecs, h)), "?")
        raise AcdcError(f"plugin {name!r} implements {hook!r}, which is no acdc-engine hook (misspelt?)") from None
    return pm


class PluginContext:
    """The plugins of one config, configured for the context's life: the only way to a hook relay.

    ``with PluginContext(config, extra=[view]) as plugins:`` builds the plugin manager (see
    :func:`build_plugin_manager`: the always-on plugins, ``config.run.plugins``, entry points and
    ``extra``; a hook implementation with no hook is an error), calls ``acdc_configure`` once on entry and
    ``acdc_unconfigure`` once on exit. The run, resume, every command, the benchmarks and each Ray actor
    hold one; a plugin gets its config and the hook relay from ``acdc_configure``.
    """

    def __init__(self, config, *, extra: list[Any] = ()) -> None:
        self.config = config
        self.manager = build_plugin_manager(config.run.plugins, extra)
        self.hook = self.manager.hook
        self._configured = False

    def open(self) -> PluginContext:
        """Configures the plugins (``acdc_configure``), once."""
        if not self._configured:
            self.hook.acdc_configure(config=self.config, hook=self.hook)
            self._configured = True
        return self

    def close(self) -> None:
        """Unconfigures the plugins (``acdc_unconfigure``: pools and trackers closed), once."""
        if self._configured:
            self._configured = False
            self.hook.acdc_unconfigure()

    def __enter__(self) -> PluginContext:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()


def discover() -> list[PluginInfo]:
    """Every plugin found, built-in or entry point, with the hooks it implements."""
    found = []
    for table, origin in ((ALWAYS_ON, "built-in (always on)"), (OPTIONAL, "built-in")):
        for name, path in table.items():
            plugin = _builtin(path)
            found.append(PluginInfo(name, origin, _hooks_of(plugin), operators=_operators_of(plugin)))
    for name, ep in sorted(_entry_points().items()):
        dist = ep.dist.name if ep.dist else "?"
        info = PluginInfo(name, f"entry point: {dist}")
        try:
            plugin = _load(name, ep.load)
            info.hooks, info.operators = _hooks_of(plugin), _operators_of(plugin)
        except AcdcError as exc:
            info.error = str(exc)
        found.append(info)
    return found
