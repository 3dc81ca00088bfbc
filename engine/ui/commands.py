"""What every ``acdc-engine`` command shares, built-in or added by a plugin (hook ``acdc_commands``).

A plugin's command is written with :func:`plugin_command`: it takes ``--config`` and ``--set`` as the
built-in commands do (:func:`config_options`), so ``acdc-engine --set k=v CMD`` and ``acdc-engine CMD
--config F --set k=v`` mean what they mean there (:func:`command_config`), and it runs inside a plugin
context of that config; an :class:`~acdc_engine.errors.AcdcError` it raises is printed as one line.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import click
from ..config import Config, load_config


def set_option(f):
    """``--set KEY=VALUE`` (repeatable), into the ``overrides`` argument."""
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                        help="Override a config value, e.g. --set run.generations=5.")(f)


def config_options(f):
    """``--config FILE`` (into ``config_file``) and ``--set KEY=VALUE`` (into ``overrides``)."""
    f = set_option(f)
    return click.option("--config", "config_file", type=click.Path(path_type=Path),
                        help="TOML file laid over the defaults.")(f)


def command_config(config_file: Path | None, overrides: tuple[str, ...] = ()) -> Config:
    """The config of a command: the default, ``config_file``, then the group's ``--set`` and ``--plugins``
    (``acdc-engine --set ... CMD``), then the command's own ``overrides``."""
    group = (click.get_current_context(silent=True) or click.Context(click.Command("x"))).find_root().obj or {}
    plugins = group.get("plugins")
    extra = [f"run.plugins={[p.strip() for p in plugins.split(',') if p.strip()]!r}"] if plugins else []
    return load_config(config_file, [*group.get("overrides", ()), *extra, *overrides])


def quiet_libraries() -> None:
    """Offline, and no library progress bars fighting the live view (transformers', the Hub's and every
    tqdm bar: :func:`~acdc_engine.ui.progress.silence_foreign_bars`; a step that wants them shown folds them
    into its own display with :func:`~acdc_engine.ui.progress.folded_bars`)."""
    from .progress import silence_foreign_bars

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    silence_foreign_bars()
    hf_logging.set_verbosity_error()


def plugin_command(body: Callable) -> Callable:
    """Makes ``body(plugins, **options)`` a command's callback (put it under ``@click.command()`` and the
    command's own ``@click.option`` decorators): the command takes ``--config`` and ``--set``, quiets the libraries'
    own progress (:func:`quiet_libraries`), loads its config and calls ``body`` inside a
    :class:`~acdc_engine.plugin_manager.PluginContext` of it, so ``plugins.config`` and ``plugins.hook`` are
    at hand and every plugin is configured once and unconfigured after, even on an error."""

    @functools.wraps(body)
    def callback(config_file: Path | None, overrides: tuple[str, ...], **options):
        from ..plugin_manager import PluginContext  # imported when called: the API loads no manager

        quiet_libraries()
        with PluginContext(command_config(config_file, overrides)) as plugins:
            return body(plugins, **options)

    return config_options(callback)
