"""Built-in plugins, imported as ``acdc_engine.plugins`` (this folder, ``plugins/``, mapped by
``package-dir`` in pyproject.toml). Each module implements hooks of :mod:`acdc_engine.hookspecs` and is
registered like a third-party plugin; some still import engine modules beside the hook API (the checkpoint
reader, seed resolution, answer extraction)."""
