"""Writes every run event's kind, and ``configure`` / ``unconfigure`` when its plugin context opens and
closes, to the file named by ACDC_PROBE_LOG, after its section's ``prefix``; adds the command ``acdc-engine probe``, which prints the prefix and the enabled plugins."""

import os

import click
from pydantic import Field

from acdc_engine.api import AcdcError, PluginSection, hookimpl, plugin_command

_prefix = ""


class ProbeSection(PluginSection):
    """The probe plugin's options."""

    prefix: str = Field("", max_length=8, description="Written before each event kind.")


@hookimpl
def acdc_config_sections():
    return {"probe": ProbeSection}


@hookimpl
def acdc_configure(config, hook):
    global _prefix
    _prefix = config.section("probe").prefix
    _log("configure")


@hookimpl
def acdc_unconfigure():
    _log("unconfigure")


@hookimpl
def acdc_event(kind, data):
    _log(kind)


def _log(line):
    if "ACDC_PROBE_LOG" in os.environ:
        with open(os.environ["ACDC_PROBE_LOG"], "a") as f:
            f.write(_prefix + line + "\n")


@click.command()
@click.option("--fail", is_flag=True, help="Raise an AcdcError.")
@plugin_command
def probe(plugins, fail):
    """Print the probe section's prefix and the enabled plugins."""
    if fail:
        raise AcdcError("probe failed on purpose")
    config = plugins.config
    click.echo(f"prefix={config.section('probe').prefix!r} plugins={','.join(config.run.plugins)} "
               f"configured={_prefix == config.section('probe').prefix and plugins.manager.has_plugin('probe')}")


@hookimpl
def acdc_commands():
    return [probe]
