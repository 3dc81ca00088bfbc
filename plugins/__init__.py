"""Built-in plugins, imported as ``acdc_engine.plugins`` (this folder, ``plugins/``, mapped by
``package-dir`` in pyproject.toml), grouped by family, one sub-package each: ``sandbox``, ``generation``,
``llm``, ``selection``, ``merge``, ``seed_models``, ``tracking``; ``forge``, ``taskgen`` and ``scientist`` are
plugins that are packages of their own. Each plugin implements hooks of :mod:`acdc_engine.hookspecs` and is
registered like a third-party plugin; from acdc-engine it imports only :mod:`acdc_engine.api` (and, by
relative imports, helpers of this package), as tests/test_import_rule.py checks."""
