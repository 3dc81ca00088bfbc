"""Writes every run event's kind to the file named by ACDC_PROBE_LOG."""

import os

from acdc_engine.hookspecs import hookimpl


@hookimpl
def acdc_event(kind, data):
    with open(os.environ["ACDC_PROBE_LOG"], "a") as f:
        f.write(kind + "\n")
