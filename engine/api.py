"""The public API: everything a plugin may import from acdc-engine.

Built-in plugins (``acdc_engine.plugins``) and third-party packages import
from this module only (a built-in plugin may also import the helpers of its
own package, ``acdc_engine.plugins.*``); a test walks their imports. The hook
specifications themselves are in :mod:`acdc_engine.hookspecs`, implemented
with :data:`hookimpl`. What the engine needs from a plugin goes through hooks,
never through an import of the plugin.
"""

from .answers import extract_answer
from .models.backend import Backend
from .models.checkpoint import CheckpointReader, CheckpointWriter
from .ui.commands import command_config, config_options, quiet_libraries
from .config import Config, PluginSection, SandboxConfig
from .digest import file_digest
from .errors import AcdcError, AcdcRuntimeError
from .events import (Advanced, Event, GenerationCommitted, GenerationStarted, ModelDone, RunFinished,
                     RunStarted, StepStarted, TaskLimbo, TaskRejected, TasksAdded, WeightsDamaged,
                     WeightsEvicted, WeightsRebuilt, WorkerLost)
from .hookspecs import hookimpl
from .models.operators import MergeMethod, MutationMethod
from .plugin_manager import PluginContext
from .ui.progress import TickingProgress, folded_bars
from .models.seed_resolution import FORGED_PREFIX, check_chat_template
from .models.seed_resolution import resolve as resolve_seed
from .tasks import Instance, TaskCodeError, TaskRequest, TaskSpec


__all__ = [
    "AcdcError", "AcdcRuntimeError", "Advanced", "Backend", "CheckpointReader", "CheckpointWriter", "Config", "Event",
    "FORGED_PREFIX",
    "GenerationCommitted", "GenerationStarted", "Instance", "MergeMethod", "ModelDone", "MutationMethod",
    "PluginSection", "RunFinished", "RunStarted", "SandboxConfig", "StepStarted", "TaskCodeError", "TaskLimbo",
    "TaskRejected", "TaskRequest", "TaskSpec", "TasksAdded", "WeightsDamaged", "WeightsEvicted", "WeightsRebuilt",
    "WorkerLost",
    "TickingProgress", "check_chat_template", "command_config", "config_options",
    "PluginContext",
    "extract_answer", "file_digest", "folded_bars", "hookimpl", "quiet_libraries", "resolve_seed",
]
