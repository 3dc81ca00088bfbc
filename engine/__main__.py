"""``python -m acdc_engine`` is the ``acdc-engine`` command."""

from acdc_engine.cli import main

main()
