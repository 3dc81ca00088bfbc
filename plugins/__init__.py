"""Built-in plugins, imported as ``acdc_engine.plugins`` (this folder, ``plugins/``, mapped by
``package-dir`` in pyproject.toml). Each module implements hooks of :mod:`acdc_engine.hookspecs` and is
registered like a third-party plugin; from acdc-engine it imports only :mod:`acdc_engine.api` (and helpers of
this package), as tests/test_import_rule.py checks."""
