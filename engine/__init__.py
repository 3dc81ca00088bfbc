"""acdc-engine: coevolve LLM experts and tasks (AC/DC) on a quality-diversity core.

The import root ``acdc_engine`` is this folder (``engine/``); the archives and
the built-in plugins are ``acdc_engine.archives`` and ``acdc_engine.plugins``.
"""

from .errors import AcdcError

__all__ = ["AcdcError", "__version__"]
__version__ = "0.1.0"
