"""The hook specifications: the public contract of acdc-engine plugins.

A plugin is any module or object with functions named like the hooks below,
decorated with :data:`hookimpl`. Built-in plugins (``acdc_engine.plugins``)
use exactly this API; a third-party package registers its plugin under the
entry-point group ``acdc_engine`` (see docs/plugins.md).

Hooks marked *firstresult* stop at the first plugin that returns something
other than ``None``: return ``None`` to pass the call on ("not mine").
Other hooks collect a list with one result per plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import numpy as np

    from .models.backend import Backend
    from .config import Config, PluginSection, SandboxConfig
    from .events import Event
    from .models.operators import MergeMethod, MutationMethod
    from .tasks import Instance, TaskRequest, TaskSpec

PROJECT = "acdc_engine"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate plugin functions with this to implement a hook.
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- run set-up -----------------------------------------------------------


@hookspec
def acdc_config_sections() -> dict[str, type[PluginSection]]:
    """Declare the plugin's own config sections: ``{name: PluginSection subclass}``.

    Asked of every installed plugin (built-in or entry point, enabled or not)
    when a config is loaded, so a file or ``--set name.key=value`` can set a
    plugin's options before it is chosen. Each section is validated like the
    engine's (one-line errors naming the field), listed by ``acdc-engine
    config-reference``, stored with the run, and read back with
    ``config.section(name)`` (an instance with the defaults if the user set
    nothing). A name must be the plugin's own: one that the engine or another
    plugin uses is an error.
    """


@hookspec
def acdc_commands() -> list[Any]:
    """Commands the plugin adds to ``acdc-engine``: a list of ``click.Command`` objects.

    Asked of every installed plugin, enabled or not, when the command line
    starts. A name the engine's own commands use, or another plugin's, is an
    error. Take ``acdc_engine.api.config_options`` and load the config with
    ``acdc_engine.api.command_config`` so ``--config`` / ``--set`` mean what
    they mean elsewhere, and work inside ``acdc_engine.api.PluginContext``;
    an ``AcdcError`` you raise is printed as one line (``forge`` is built this way).
    """


@hookspec
def acdc_prepare_run(config: Config, hook: Any) -> None:
    """Called once before a new run starts (not on ``resume``), inside a configured plugin context, after
    the config is validated and the run folder is created (so a folder that cannot hold the run fails
    first), before any seed is resolved: make what the run's seeds need (the ``forge`` plugin forges the
    default experts of a ``forged:BASE`` group that has none yet). An error here removes the new folder."""


@hookspec
def acdc_configure(config: Config, hook: Any) -> None:
    """Called once when a plugin context opens (``PluginContext``: a run or resume, a command, a benchmark,
    each Ray actor), before any other hook but ``acdc_config_sections`` and ``acdc_commands``.

    ``config`` is the validated run config: read your own section from it.
    ``hook`` is the plugin manager's hook relay, for calling other plugins'
    hooks (e.g. ``hook.acdc_task_instances(task=..., limits=config.sandbox)``
    to try task code in the sandbox; the sandbox relays ``judge()`` to
    ``hook.acdc_judge``). Start nothing expensive here; start it on first
    use. Return values are ignored.
    """


# --- seed models ----------------------------------------------------------


@hookspec(firstresult=True)
def acdc_resolve_seed(spec: str, cache_dir: Path) -> Path | dict[str, Path] | None:
    """Turn a seed-model spec from ``[models] seeds`` into a checkpoint directory.

    The directory must hold ``config.json``, tokenizer files and one
    ``model.safetensors``. Convert or download into ``cache_dir`` if needed,
    atomically (an interrupted conversion must leave no half-written cache).
    A spec may name a group of models (e.g. ``forged:smollm2``, every expert
    forged from smollm2): return a dict from each member's own spec (which
    must resolve alone) to its directory; it may be empty. Return ``None`` if
    the spec is not yours; raise ``AcdcError`` naming the spec if it is yours
    but cannot be resolved.
    """


# --- model operators ------------------------------------------------------


@hookspec
def acdc_merge_methods() -> dict[str, MergeMethod]:
    """Return the crossover (merge) methods this plugin offers, by name.

    Selected with ``[evolution] crossover = NAME``. Names must be unique over
    all plugins. Each method's ``draw_params`` is given the run's config: keep
    its settings in your own section (``acdc_config_sections``), as the
    built-in ``merge`` plugin keeps its in ``[merge]``.
    """


@hookspec
def acdc_mutation_methods() -> dict[str, MutationMethod]:
    """Return the mutation methods this plugin offers, by name.

    Selected with ``[evolution] mutation = NAME`` (``none`` turns mutation off);
    ``draw_params`` as for :func:`acdc_merge_methods`.
    """


# --- tasks ----------------------------------------------------------------


@hookspec
def acdc_generate_tasks(request: TaskRequest) -> list[TaskSpec] | None:
    """Write new task families for the pool.

    ``request.mode`` is ``initial`` (up to ``request.n`` completely new
    families), ``harder`` or ``novel`` (variants of ``request.parent``).
    ``request.inspiration`` holds a few random tasks of the active pool.
    Return ``None`` or ``[]`` for a parent you cannot vary (compare
    ``request.parent.generator`` with your name). Use ``request.seed`` for all
    randomness. Every returned family still passes the novelty hooks and must
    run cleanly in the sandbox before it is accepted. A family you gave up on
    may be returned with ``rejected="category: detail"`` set: the engine
    records it in the reject log and never runs it.
    """


@hookspec(firstresult=True)
def acdc_task_instances(task: TaskSpec, limits: SandboxConfig) -> list[Instance] | None:
    """Run a family's ``get_tasks()`` and ``get_instructions()`` in the sandbox.

    Raise ``TaskCodeError`` with a one-line reason if the code fails, hangs,
    exceeds its limits or returns the wrong shapes. Never run task code in the
    engine's process.
    """


@hookspec(firstresult=True)
def acdc_program_passes(program: str, limits: SandboxConfig) -> bool | None:
    """Whether a whole Python program (e.g. a completion followed by its tests, as HumanEval scores) runs to
    its end without raising, in the sandbox under ``limits``. ``acdc-engine evaluate`` asks it for code
    benchmarks. Never run the program in the engine's process.
    """


@hookspec
def acdc_capabilities() -> list[str]:
    """The capabilities your procedural task families cover, in your order (``acdc-engine forge`` offers
    these, and trains each expert on one)."""


@hookspec
def acdc_procedural_families(capability: str, difficulties: tuple[int, ...], count: int,
                             seed_of: Any) -> list[TaskSpec]:
    """One family of ``count`` instances for each of your procedural variants of ``capability`` at each of
    ``difficulties`` (1-5), in a fixed order; ``[]`` if you have none. ``seed_of(template, variant,
    difficulty)`` gives each family's seed: the caller (``forge``) salts it per data split, so train,
    replay and held-out data differ."""


@hookspec(firstresult=True)
def acdc_score_submissions(
    task: TaskSpec, instances: list[Instance], submissions: list[str], limits: SandboxConfig
) -> list[float | None] | None:
    """Score each submission with the family's own ``score()``, in the sandbox.

    Returns one score per submission, aligned with ``instances``: a number in
    [0, 1], or ``None`` (counted as 0). Raise ``TaskCodeError`` if the task
    code fails; the engine marks the task broken, as it does for a score
    outside [0, 1] (not finite, negative, above 1) or a wrong count.
    """


@hookspec(firstresult=True)
def acdc_task_embeddings(texts: list[str]) -> np.ndarray | None:
    """Embed task descriptions: a (len(texts) x dim) float array, rows of unit length.

    Used for the novelty filter and for the task-diversity (Vendi) statistic.
    """


@hookspec
def acdc_task_novelty(candidate: TaskSpec, archive: list[TaskSpec]) -> str | None:
    """Judge whether a candidate family is new enough to enter the pool.

    ``archive`` is every task accepted so far in the run (the global archive).
    Return ``None`` to let it in, or a short reason starting ``not novel:``.
    Every implementation is asked; any reason rejects the candidate (it is
    kept in the reject log with that reason).
    """


@hookspec(firstresult=True)
def acdc_judge(question: str, answer: str, rubric: str) -> float | None:
    """Grade ``answer`` to ``question`` against ``rubric``; task code's ``judge()``.

    Task code running in the sandbox calls the global ``judge(question,
    answer, rubric)``; the sandbox passes the call to this hook on the engine
    side (at most ``sandbox.judge_budget`` calls per batch) and hands the
    number back. Return a score, conventionally in [0, 1], or ``None`` to
    leave the call to another plugin; if no plugin answers, the task's batch
    fails with ``TaskCodeError``. An exception raised here is not the task's
    fault: it stops the run.
    """


# --- models: evaluation, criterion, descriptors ---------------------------


@hookspec(firstresult=True)
def acdc_make_backend(config: Config, model_dir: Path) -> Backend | None:
    """Create the generation backend named by ``[generation] backend``.

    For outside benchmarks (``acdc-engine evaluate``) the engine asks with a
    config whose ``backend`` is ``generation.answer_backend``, where that is
    set. ``model_dir`` is a seed checkpoint that fixes the architecture and
    tokenizer. Return ``None`` if the configured backend is not yours.
    """


@hookspec
def acdc_minimal_criterion(responses: list[str]) -> str | None:
    """Judge whether a new model is viable from its raw responses.

    Return ``None`` if it passes, or a short reason (e.g. ``"gibberish: ..."``)
    if it fails. Every implementation is asked; any reason rejects the model
    before it reaches the archive.
    """


@hookspec(firstresult=True)
def acdc_descriptors(
    skills: np.ndarray, difficulty: np.ndarray, measure_dim: int, capabilities: list[str], axes: list[str], kind: str
) -> np.ndarray | None:
    """Map skill vectors to the archive's measures.

    ``skills`` is a (models x active tasks) 0/1 matrix, ``difficulty`` a
    weight per task and ``capabilities`` each task's capability; return a
    (models x ``measure_dim``) float array. ``kind`` is the configured
    descriptor kind (``[evolution] descriptors``, 'auto' resolved, e.g.
    ``skills`` or ``capabilities``): return ``None`` for kinds that are not
    yours. ``measure_dim`` is fixed for the run; ``axes`` names the measure
    axes where the kind has named ones (the capability names for
    ``capabilities``), else it is empty.
    """


# --- run lifecycle and events ----------------------------------------------


@hookspec
def acdc_unconfigure() -> None:
    """Called once when the plugin context closes (the run, the command or the Ray actor ends), even after an
    error.

    Release what the plugin holds: processes, connections, files.
    """


# --- run events -------------------------------------------------------------


@hookspec
def acdc_event(event: Event, kind: str, data: dict[str, Any]) -> None:
    """Observe the run. Called for every event; return values are ignored.

    ``event`` is one of the frozen dataclasses of :mod:`acdc_engine.events`
    (``RunStarted``, ``GenerationStarted``, ``StepStarted``, ``Advanced``,
    ``ModelDone``, ``TaskRejected``, ``TaskLimbo``, ``TasksAdded``,
    ``WorkerLost``, ``WeightsEvicted``, ``WeightsDamaged``, ``WeightsRebuilt``,
    ``GenerationCommitted``, ``RunFinished``): dispatch on its type, read its
    fields. ``kind`` (e.g. ``"model_done"``) and ``data`` (the fields as a
    dict) are the same event for implementations that take ``(kind, data)``;
    take only the arguments you need.
    """


# --- outside evaluation -----------------------------------------------------


@hookspec
def acdc_evaluation_results(run_dir: Path, config: Config, results: dict[str, Any], files: list[Path]) -> None:
    """``acdc-engine evaluate`` has scored a run's systems; called once, with the run's configured plugins,
    after its files are written. Return values are ignored.

    ``results`` is the report ``evaluate --json`` writes: ``benchmarks`` (``--benchmark``: per benchmark
    ``n_items`` and per system ``n``, ``coverage``, ``majority``, ``best_of_n``) and ``lm_eval``
    (``--lm-eval``: the same per task, each system's ``members`` with lm-eval's own aggregate ``metrics``
    and the ``results_file`` lm-eval's ``EvaluationTracker`` wrote, plus ``num_fewshot``,
    ``apply_chat_template``, ``gen_kwargs``, ``output_path``). ``files`` are what it wrote (the JSON
    report, the per-sample log, lm-eval's results folder), empty without ``--json``. The ``wandb`` and
    ``mlflow`` plugins log them to the run's tracked run.
    """
