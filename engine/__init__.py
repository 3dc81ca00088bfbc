"""acdc-engine: coevolve LLM experts and tasks (AC/DC) on a quality-diversity core.

The import root ``acdc_engine`` is this folder (``engine/``): the contract, config, plugin manager and
store here, and the rooms ``models`` (genome -> weights), ``run`` (the loop), ``evaluation`` (after the run)
and ``ui`` (the command line, live view, report). The archives and the built-in plugins are
``acdc_engine.archives`` and ``acdc_engine.plugins`` (folders ``archives/`` and ``plugins/``).
"""

from .errors import AcdcError

__all__ = ["AcdcError", "__version__"]
__version__ = "0.1.0"
