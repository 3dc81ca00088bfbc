"""``python -m acdc_engine`` is the ``acdc-engine`` command."""

from .ui.cli import main

main()
