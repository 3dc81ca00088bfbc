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
from .ui.commands import plugin_command
from .config import Config, PluginSection, SandboxConfig
from .digest import file_digest
from .errors import AcdcError, AcdcRuntimeError
from .events import (Advanced, Event, GenerationCommitted, GenerationStarted, ModelDone, RunFinished,
                     RunStarted, StepStarted, TaskLimbo, TaskRejected, TasksAdded, WeightsDamaged,
                     WeightsEvicted, WeightsRebuilt, WorkerLost)
from .hookspecs import hookimpl
from .models.operators import MergeMethod, MutationMethod
from .ui.progress import TickingProgress, folded_bars
from .models.seed_resolution import check_chat_template
from .models.seed_resolution import resolve as resolve_seed
from .tasks import Instance, TaskCodeError, TaskRequest, TaskSpec
from .records import ArchiveRow


__all__ = [
    "AcdcError", "AcdcRuntimeError", "Advanced", "ArchiveRow", "Backend", "CheckpointReader", "CheckpointWriter", "Config", "Event",
    "GenerationCommitted", "GenerationStarted", "Instance", "MergeMethod", "ModelDone", "MutationMethod",
    "PluginSection", "RunFinished", "RunStarted", "SandboxConfig", "StepStarted", "TaskCodeError", "TaskLimbo",
    "TaskRejected", "TaskRequest", "TaskSpec", "TasksAdded", "WeightsDamaged", "WeightsEvicted", "WeightsRebuilt",
    "WorkerLost",
    "TickingProgress", "check_chat_template",
    "extract_answer", "file_digest", "folded_bars", "hookimpl", "plugin_command", "resolve_seed",
]
