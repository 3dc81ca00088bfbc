"""The public API: everything a plugin may import from acdc-engine.

Built-in plugins (``acdc_engine.plugins``) and third-party packages import
from this module only (a built-in plugin may also import the helpers of its
own package, ``acdc_engine.plugins.*``); a test walks their imports. The hook
specifications themselves are in :mod:`acdc_engine.hookspecs`, implemented
with :data:`hookimpl`. What the engine needs from a plugin goes through hooks,
never through an import of the plugin.
"""

from acdc_engine.answers import extract_answer
from acdc_engine.backend import Backend
from acdc_engine.checkpoint import CheckpointReader, CheckpointWriter
from acdc_engine.commands import plugin_command
from acdc_engine.config import Config, PluginSection, SandboxConfig
from acdc_engine.digest import file_digest
from acdc_engine.errors import AcdcError, AcdcRuntimeError
from acdc_engine.events import (Advanced, Event, GenerationCommitted, GenerationStarted, ModelDone, RunFinished,
                                RunStarted, StepStarted, TaskLimbo, TaskRejected, TasksAdded, WeightsDamaged,
                                WeightsEvicted, WeightsRebuilt, WorkerLost)
from acdc_engine.hookspecs import hookimpl
from acdc_engine.operators import MergeMethod, MutationMethod
from acdc_engine.progress import TickingProgress, folded_bars
from acdc_engine.records import ArchiveRow
from acdc_engine.seeds import check_chat_template
from acdc_engine.seeds import resolve as resolve_seed
from acdc_engine.tasks import Instance, TaskCodeError, TaskRequest, TaskSpec


__all__ = [
    "AcdcError", "AcdcRuntimeError", "Advanced", "ArchiveRow", "Backend", "CheckpointReader", "CheckpointWriter", "Config", "Event",
    "GenerationCommitted", "GenerationStarted", "Instance", "MergeMethod", "ModelDone", "MutationMethod",
    "PluginSection", "RunFinished", "RunStarted", "SandboxConfig", "StepStarted", "TaskCodeError", "TaskLimbo",
    "TaskRejected", "TaskRequest", "TaskSpec", "TasksAdded", "WeightsDamaged", "WeightsEvicted", "WeightsRebuilt",
    "WorkerLost",
    "TickingProgress", "check_chat_template",
    "extract_answer", "file_digest", "folded_bars", "hookimpl", "plugin_command", "resolve_seed",
]
