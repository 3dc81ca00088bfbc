"""Running task-family code out of process: the ``sandbox`` plugin, how its workers are started
(bubblewrap or rlimits), their pool, the worker itself, and the ``judge-overlap`` judge that
task code may call."""
