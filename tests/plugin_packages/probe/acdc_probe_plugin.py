"""Writes every run event's kind to the file named by ACDC_PROBE_LOG, after its section's ``prefix``."""

import os

from pydantic import Field

from acdc_engine.api import PluginSection, hookimpl

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


@hookimpl
def acdc_event(kind, data):
    with open(os.environ["ACDC_PROBE_LOG"], "a") as f:
        f.write(_prefix + kind + "\n")
