"""The run configuration: typed, validated, loaded from TOML with overrides.

The embedded default lives in ``default_config.toml`` beside this module. A
user file is laid over it, then ``ACDC_SECTION__KEY=value`` environment
variables (read by pydantic-settings), then ``--set section.key=value``
overrides; the result is validated by the pydantic models below, and any bad
value is reported as one line naming the field (and the variable that set it).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from .errors import AcdcError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Keys of this section that lived elsewhere in older configs: ``{"old.dotted.path": "key here"}``.
    #: Validation moves each one found at its old path into this section (a value also set here wins).
    renamed: ClassVar[dict[str, str]] = {}
    #: True: a user's config (file, variable or ``--set``) that still uses an old path of :attr:`renamed`
    #: is refused in one line naming the new one; only a run's stored config (written before the move) has
    #: it moved. False: moved in both, so an old config file still loads.
    refuse_renamed: ClassVar[bool] = False


class PluginSection(_Section):
    """Base of a plugin's own config section, declared through the ``acdc_config_sections`` hook.

    Subclass it with pydantic fields (defaults, bounds, ``description=``): the
    run's config then carries the section under the plugin's name, ``--set
    NAME.key=value`` validates against it, and ``config-reference`` lists it.
    Unknown keys are refused and the section is frozen, like the engine's.
    A key that moved into the section from elsewhere is declared in
    ``renamed`` (``{"old.section.key": "key"}``), so that old configs and
    stored runs still read; ``refuse_renamed = True`` refuses the old path in
    a user's config instead (a stored run's config is still moved).
    """


class RunConfig(_Section):
    """Length of the run, its seed, where it goes and which plugins it uses."""

    generations: int = Field(3, ge=0, description="Generations after the initial population.")
    seed: int = Field(0, description="Seed of every random choice in the run.")
    output_dir: str = Field("runs", description="Folder under which each run gets its own directory.")
    plugins: list[str] = Field(
        default_factory=lambda: ["merge", "taskgen"],
        description="Optional plugins to enable (built-in or entry-point names).",
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="Where materialisation and generation run: this process, or Ray actors "
        "(extra acdc-engine[ray]).")


class ModelsConfig(_Section):
    """Seed models and the base model that task vectors are taken against."""

    seeds: list[str] = Field(
        default_factory=lambda: ["smollm2", "forged:smollm2"],
        min_length=1,
        description="Seed model specs: 'smollm2', a local safetensors directory, a Hugging Face Hub id 'ORG/NAME' "
        "found offline in the local Hugging Face cache (HF_HUB_CACHE), or 'forged:BASE' (the experts "
        "`acdc-engine forge` made from BASE, none until it has run).",
    )
    base: str = Field("smollm2", description="Spec of the base model for task vectors (theta_base).")
    cache_dir: str = Field("~/.cache/acdc-engine", description="Cache for converted seed checkpoints and forged experts.")


class EvolutionConfig(_Section):
    """Model archive and operators."""

    archive_size: int = Field(6, ge=1, description="Models kept by Dominated Novelty Search.")
    initial_population: int = Field(4, ge=1, description="Seeds plus offspring of random seed pairs at generation 0.")
    offspring_per_generation: int = Field(4, ge=1, description="Recipes asked from the emitter each generation.")
    dns_k: int = Field(3, ge=1, description="Fitter neighbours averaged in the DNS score.")
    crossover: str = Field("linear", description="Merge method name (see `acdc-engine plugins`); the built-in "
                           "methods' parameters are the merge plugin's section [merge].")
    mutation: str = Field("svd", description="Mutation method name, or 'none'.")
    archive: Literal["dns", "dns-euclidean", "map-elites-grid", "map-elites-cvt", "nsga2", "top-fitness"] = Field(
        "dns-euclidean", description="Model archive: DNS with the AC/DC paper's score (the difficulty-weighted share "
        "of tasks a model solves and its nearest fitter ones do not), DNS with pyribs' Euclidean score over scaled "
        "skill vectors (the default: its task forces covered more of the discovery benchmark's outside questions on "
        "3 of 3 run seeds), MAP-Elites on a grid or CVT, NSGA-II (fitness, novelty), or top-fitness only.")
    descriptors: Literal["auto", "skills", "capabilities"] = Field(
        "auto", description="Archive measures: skill vectors, or pass rate per capability; 'auto' picks "
        "capabilities for MAP-Elites and skills otherwise.")
    capabilities: list[str] = Field(
        default_factory=lambda: ["arithmetic", "strings", "lists", "units", "code", "knowledge"], min_length=1,
        description="Capability axes of the 'capabilities' descriptors (tasks of other capabilities are ignored).")
    grid_cells: int = Field(4, ge=1, description="Cells per capability axis of the MAP-Elites grid.")
    cvt_cells: int = Field(32, ge=2, description="Cells (k-means centroids) of the MAP-Elites CVT.")
    minimal_criterion: bool = Field(True, description="Reject gibberish models (false: the ablation without it).")
    emitter: Literal["recipe", "cma-es"] = Field(
        "recipe", description="How children are proposed: 'recipe' (parents drawn uniformly from the archive, "
        "merge weights drawn around 1 with merge.crossover_std) or 'cma-es' (pyribs' CMA-ES over the merge weights per "
        "parent and block of layers (cma_layer_granularity) of one parent group, drawn from the archive at each ES restart; ranked by archive status, then "
        "by improvement where the archive reports one, else by fitness).")
    cma_sigma0: float = Field(0.2, gt=0, description="cma-es: initial step size of the ES around equal weights "
                              "(1 per parent), also after each restart.")
    cma_weight_bounds: tuple[float, float] = Field(
        (0.0, 2.0), description="cma-es: [lower, upper] bounds of every merge weight; the ES resamples outside "
        "them (the linear merge normalises the weights, so their ratio is what counts).")
    cma_restart: Literal["no_improvement", "basic"] = Field(
        "no_improvement", description="cma-es: restart (new parents, equal weights, sigma0) when no child of a "
        "generation entered the archive and on CMA-ES's own convergence tests ('no_improvement', pyribs' "
        "CMA-ME rule), or on the convergence tests only ('basic'). A parent leaving the archive always restarts.")
    cma_layer_granularity: int = Field(
        8, ge=0, description="cma-es: layers per block of merge weights (mergekit-evolve's layer_granularity): "
        "the ES searches one weight per parent for each block of this many consecutive layers (the last block may "
        "be shorter; embeddings take the first block's weights, the final norm and lm_head the last's); 0: one "
        "weight per parent for the whole model.")

    @model_validator(mode="after")
    def _cma_bounds(self) -> EvolutionConfig:
        low, high = self.cma_weight_bounds
        if not low < 1.0 < high:
            raise ValueError(f"cma_weight_bounds {list(self.cma_weight_bounds)} must hold the ES's start, equal "
                             "weights of 1, strictly inside (lower < 1 < upper)")
        return self

    @model_validator(mode="after")
    def _grid_fits(self) -> EvolutionConfig:
        if self.archive == "dns" and self.descriptor_kind != "skills":
            raise ValueError("archive dns (the AC/DC score) needs descriptors = 'skills'; use 'dns-euclidean' "
                             "for other descriptors")
        if self.archive.startswith("map-elites"):
            if self.descriptor_kind != "capabilities":
                raise ValueError(f"archive {self.archive} needs descriptors = 'capabilities' (skill vectors have "
                                 "one axis per task slot, too many for a grid)")
            if self.archive == "map-elites-grid" and self.grid_cells ** len(self.capabilities) > 1_000_000:
                raise ValueError(f"grid_cells ** {len(self.capabilities)} capabilities exceeds 1,000,000 cells")
        return self

    @property
    def descriptor_kind(self) -> str:
        """The descriptors in use, with 'auto' resolved."""
        if self.descriptors != "auto":
            return self.descriptors
        return "capabilities" if self.archive.startswith("map-elites") else "skills"

    @property
    def capability_axes(self) -> list[str]:
        """The capability axes of the archive's measures (none for skill vectors)."""
        return list(self.capabilities) if self.descriptor_kind == "capabilities" else []


class TasksConfig(_Section):
    """The task pool and its adaptation."""

    initial_families: int = Field(12, ge=1, description="Task families generated for the initial pool.")
    instances_per_family: int = Field(3, ge=1, description="Instances in each generated family.")
    active_cap: int = Field(24, ge=1, description="Most tasks in the active pool; the oldest are pruned.")
    adapt_every: int = Field(2, ge=1, description="Generations between task-pool adaptations.")
    new_per_adaptation: int = Field(6, ge=0, description="New task families asked for at each adaptation.")
    pass_threshold: float = Field(0.5, ge=0, le=1, description="Mean score at which a model solves a task.")
    inspirations: int = Field(3, ge=0, description="Random active tasks sent with each request as inspiration.")
    static_pool: bool = Field(False, description="Never adapt the task pool (the static-pool ablation).")

    @model_validator(mode="after")
    def _cap_holds_initial(self) -> TasksConfig:
        if self.initial_families > self.active_cap:
            raise ValueError(
                f"initial_families ({self.initial_families}) exceeds active_cap ({self.active_cap})"
            )
        return self


class GenerationConfig(_Section):
    """How models answer tasks."""

    backend: str = Field("transformers", description="Generation backend name.")
    answer_backend: str = Field(
        "", description="Backend that answers outside benchmarks (acdc-engine evaluate, the discovery benchmark), "
        "where one model answers many prompts; empty: the run's own backend. openvino and ctranslate2 answer in "
        "float32 as the transformers backend does, after a conversion per model; on a quiet 2-core machine with AMX "
        "openvino ran faster than the default and ctranslate2 slower (docs/performance.md). Likelihoods (evaluate's "
        "judge, multiple choice) use the run's backend where this one offers none; lm-eval tasks (evaluate "
        "--lm-eval) always do.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Dtype of the resident model; 'auto': the one whose matmuls this machine runs faster "
        "(bfloat16 where the CPU has bf16 matrix units), probed once per machine and kept in "
        "models.cache_dir/machine.json. A run stores the dtype it resolved to.")
    max_new_tokens: int = Field(48, ge=1, le=4096, description="Most tokens in one answer (greedy).")
    batch_size: int = Field(0, ge=0, description="Prompts per batch; 0 chooses it from the memory available.")


class RayConfig(_Section):
    """The Ray executor (``run.executor = "ray"``): workers and their resources."""

    address: str = Field("", description="Ray cluster to join; empty starts a local one.")
    workers: int = Field(2, ge=1, description="Actors, each with a resident model.")
    cpus_per_worker: float = Field(1.0, ge=0, description="CPUs Ray reserves for each actor.")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs Ray reserves for each actor.")
    max_retries: int = Field(3, ge=0, description="Times a job is re-queued after its worker died.")


class SandboxConfig(_Section):
    """Isolation and limits of task code, which always runs in a separate process."""

    timeout_s: float = Field(10.0, gt=0, description="Wall-clock limit of one batch of calls to one family's code.")
    memory_mb: int = Field(512, ge=64, description="Address-space limit of one sandbox worker process.")
    isolation: Literal["auto", "bubblewrap", "rlimits"] = Field(
        "auto", description="bubblewrap namespaces where they run ('auto' falls back with a warning), "
        "or only rlimits.")
    judge_budget: int = Field(8, ge=0, description="Most judge() calls task code may make in one batch.")
    max_instances: int = Field(32, ge=1, description="Most instances a family's get_tasks() may give; a family "
                               "with more is rejected (every model answers every instance).")
    max_instruction_chars: int = Field(8000, ge=1, description="Longest instruction get_instructions() may give; "
                                       "a family with a longer one is rejected (it is a prompt to every model).")


class StoreConfig(_Section):
    """The run directory's weight files (kept for archive members and seeds, by content digest)."""

    weights_budget_mb: int = Field(
        1100, ge=0, description="Disk budget of the archive members' kept weight files, in MiB (two float32 "
        "SmolLM2-135M files); 0 = unlimited. Beyond it the least recently used are evicted, and rebuilt from "
        "their recipes when needed. Seeds are neither counted nor evicted (hard links to the seed cache).")
    keep_next_reads: bool = Field(
        True, description="Never evict the files the next generation reads (its parents; before a task "
        "adaptation every member; before the task force the members it evaluates), even beyond the budget: "
        "evicting one would only have that generation rebuild it, on top of the budget until its commit. The "
        "budget holds for the other files, and for all once the run has finished. false: the budget holds at "
        "every commit (those files are still evicted last).")


class ResultConfig(_Section):
    """What is reported at the end of a run."""

    task_force_size: int = Field(3, ge=1, description="Models in the final task force.")
    task_force_method: Literal["greedy", "exact", "top-fitness", "random"] = Field(
        "greedy", description="Task-force selection over the final archive: greedy Coverage, exact search "
        "(small archives), or the top-fitness / random baselines.")
    task_force_units: Literal["tasks", "instances"] = Field(
        "tasks", description="What the task force's pick covers: tasks (solved: the mean score over a task's "
        "instances reaches tasks.pass_threshold, as the paper counts Coverage) or each instance of every task "
        "(answered: its score reaches the threshold), a finer signal with the same answers. The reported "
        "Coverage counts tasks either way.")


class Config(_Section):
    """A whole run configuration."""

    run: RunConfig = RunConfig()
    models: ModelsConfig = ModelsConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    tasks: TasksConfig = TasksConfig()
    generation: GenerationConfig = GenerationConfig()
    ray: RayConfig = RayConfig()
    sandbox: SandboxConfig = SandboxConfig()
    store: StoreConfig = StoreConfig()
    result: ResultConfig = ResultConfig()

    @model_validator(mode="before")
    @classmethod
    def _machine_dtype(cls, data: Any) -> Any:
        """``generation.dtype = "auto"`` becomes this machine's faster dtype (:mod:`acdc_engine.machine`)."""
        if not isinstance(data, dict):
            return data
        generation = data.get("generation", {})
        if isinstance(generation, dict) and generation.get("dtype", "auto") == "auto":
            from .machine import machine_dtype

            models = data.get("models", {})
            cache_dir = models.get("cache_dir") if isinstance(models, dict) else None
            if not isinstance(cache_dir, str):
                cache_dir = ModelsConfig.model_fields["cache_dir"].default
            data = {**data, "generation": {**generation, "dtype": machine_dtype(cache_dir)}}
        return data

    def answering(self) -> "Config":
        """This config with ``generation.backend`` set to ``generation.answer_backend`` (if set): for
        answering outside benchmarks."""
        if not self.generation.answer_backend:
            return self
        return self.model_copy(update={"generation": self.generation.model_copy(
            update={"backend": self.generation.answer_backend})})

    def section(self, name: str) -> BaseModel:
        """A config section by name: the engine's, or a plugin's own (see :class:`PluginSection`)."""
        if name not in type(self).model_fields:
            raise AcdcError(f"config has no section [{name}] (no installed plugin declares it)")
        return getattr(self, name)


#: Plugin sections by name, as the ``acdc_config_sections`` hook declares them.
Sections = Mapping[str, type[PluginSection]]


def installed_sections() -> dict[str, type[PluginSection]]:
    """The config sections of every installed plugin, enabled or not (``acdc_config_sections``): what a
    ``sections`` argument below means when it is left out. The one place where this module reaches the
    plugin manager, imported when called: the plugin manager's hook specifications name this module's
    types, so ``import acdc_engine.config`` must not import it (a test checks)."""
    from .plugin_manager import config_sections

    return config_sections()


@lru_cache(maxsize=None)
def _config_model(sections: tuple[tuple[str, type[PluginSection]], ...]) -> type[Config]:
    if not sections:
        return Config
    return create_model("Config", __base__=Config, __doc__=Config.__doc__,
                        **{name: (model, model()) for name, model in sections})


def config_model(sections: Sections | None = None) -> type[Config]:
    """The config model with the plugins' own ``sections`` (by default every installed plugin's, see
    :func:`installed_sections`) beside the engine's."""
    sections = installed_sections() if sections is None else sections
    for name, model in sections.items():
        if name in Config.model_fields:
            raise AcdcError(f"a plugin declares config section [{name}], which is the engine's own; rename it")
        if not (isinstance(model, type) and issubclass(model, PluginSection)):
            raise AcdcError(f"config section [{name}] is not a PluginSection subclass (got {model!r})")
        for old, key in model.renamed.items():
            if "." not in old or key not in model.model_fields:
                raise AcdcError(f"config section [{name}] declares {old!r} renamed to {key!r}: expected "
                                "'section.key' renamed to one of its own keys")
    return _config_model(tuple(sorted(sections.items())))


def default_config_text() -> str:
    """The embedded default config, as TOML text."""
    return resources.files("acdc_engine").joinpath("default_config.toml").read_text()


def _parse_value(raw: str) -> Any:
    """Reads an override value as TOML (numbers, booleans, lists), else as a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_override(data: dict, assignment: str) -> None:
    """Applies one ``section.key=value`` override to raw config data in place."""
    key, sep, raw = assignment.partition("=")
    if not sep or "." not in key:
        raise AcdcError(f"--set {assignment!r}: expected section.key=value")
    *sections, leaf = key.strip().split(".")
    node = data
    for section in sections:
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise AcdcError(f"--set {assignment!r}: {section} is not a section")
    node[leaf] = _parse_value(raw.strip())


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def renamed_keys(model: type[Config]) -> list[tuple[str, str, str, bool]]:
    """Every key that a section of ``model`` declares as moved there (:attr:`PluginSection.renamed`): its
    old dotted path, its section and key now, and whether a user's config is refused for using the old path."""
    return [(old, section, key, field.annotation.refuse_renamed) for section, field in model.model_fields.items()
            for old, key in field.annotation.renamed.items()]


def _without(data: dict, path: list[str], leaf: str) -> dict:
    """``data`` without the key ``leaf`` of the table at ``path``; the tables on the path are copied."""
    if not path:
        return {k: v for k, v in data.items() if k != leaf}
    return data | {path[0]: _without(data[path[0]], path[1:], leaf)}


def _move_renamed(data: dict, model: type[Config], *, stored: bool) -> dict:
    """Moves each key found at an old path of a section's ``renamed`` into that section (a value the section
    sets itself wins); in a user's config, an old path the section refuses (``refuse_renamed``) is one line
    saying where the key went, while a stored run's config (written before the move) is moved, so that run
    still reads and resumes. ``data`` itself is not changed."""
    for old, section, key, refuse in renamed_keys(model):
        *path, leaf = old.split(".")
        node = data
        for name in path:
            node = node.get(name) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        if refuse and not stored:
            raise AcdcError(f"config field {old} has moved to the section [{section}]: set {section}.{key} instead")
        if not isinstance(data.get(section) or {}, dict):  # validation names the section
            continue
        value = node[leaf]
        data = _without(data, path, leaf)
        data[section] = {key: value} | (data.get(section) or {})
    return data


def validate(data: dict, *, stored: bool = False, sections: Sections | None = None) -> Config:
    """Validates raw config data (the engine's sections and the plugins' ``sections``, by default every
    installed plugin's); a bad value raises one line naming the field. ``stored``: the data is a run's
    stored config (keys that have moved since it was written are moved, never refused)."""
    return _validate(data, config_model(sections), stored=stored)


def _validate(data: dict, model: type[Config], *, stored: bool = False) -> Config:
    data = _move_renamed(data, model, stored=stored)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            raise AcdcError(f"config section [{field}] is unknown: neither the engine's nor one that an installed "
                            f"plugin declares (sections: {', '.join(model.model_fields)})") from None
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
        raise AcdcError(f"config field {field}: {err['msg']}{got}") from None


#: Prefix of the environment variables that override config values: ``ACDC_SECTION__KEY=value``.
ENV_PREFIX = "ACDC_"
#: Between a variable's section and key (one underscore may be part of a name, as in ``run.output_dir``).
ENV_DELIMITER = "__"


def env_overrides(model: type[Config], environ: Mapping[str, str]) -> tuple[dict, dict[str, str]]:
    """The config values that ``ACDC_SECTION__KEY=value`` variables of ``environ`` set, read by
    pydantic-settings (names are case-insensitive; a list, tuple or section is JSON), as raw config data;
    and the variable of each dotted field (``{"run.generations": "ACDC_RUN__GENERATIONS"}``). A variable
    with the delimiter whose section is unknown is one line naming it (``ACDC_*`` variables without the
    delimiter, such as ``ACDC_PROGRESS_EVERY_S``, are not config)."""
    from pydantic import create_model as _create
    from pydantic_settings import BaseSettings, EnvSettingsSource

    names = {name.lower(): name for name in environ if name.upper().startswith(ENV_PREFIX)
             and ENV_DELIMITER in name[len(ENV_PREFIX):]}
    if not names:
        return {}, {}
    sections = {s.lower() for s in model.model_fields}
    for lower, name in sorted(names.items()):
        section = lower[len(ENV_PREFIX):].split(ENV_DELIMITER, 1)[0]
        if section not in sections:
            raise AcdcError(f"environment variable {name}: config has no section [{section}] (sections: "
                            f"{', '.join(model.model_fields)})")
    fields = {name: (field.annotation, None) for name, field in model.model_fields.items()}
    source = EnvSettingsSource(_create("EnvConfig", __base__=BaseSettings, **fields), env_prefix=ENV_PREFIX,
                               env_nested_delimiter=ENV_DELIMITER, case_sensitive=False)
    source.env_vars = {k.lower(): v for k, v in environ.items()}  # the given environment, not os.environ
    try:
        data = source()
    except ValueError as exc:  # a list, tuple or section that is not JSON
        section = re.search(r'field "(\w+)"', str(exc))
        culprits = [n for lower, n in sorted(names.items())
                    if section and lower[len(ENV_PREFIX):].startswith(section.group(1).lower() + ENV_DELIMITER)]
        raise AcdcError(f"environment variable {' or '.join(culprits) or 'ACDC_*'}: not JSON (a list is written "
                        "as JSON, e.g. '[\"a\", \"b\"]')") from None
    by_field = {lower[len(ENV_PREFIX):].replace(ENV_DELIMITER, "."): name for lower, name in names.items()}
    return data, by_field


def load_config(path: Path | None = None, overrides: list[str] = (), environ: Mapping[str, str] | None = None,
                *, sections: Sections | None = None) -> Config:
    """The default config, laid over by a TOML file, the ``ACDC_SECTION__KEY`` variables of ``environ``
    (default: this process's environment) and ``--set`` overrides; validated with the plugins' ``sections``
    (by default every installed plugin's), whose defaults fill what is not set."""
    model = config_model(sections)
    data = tomllib.loads(default_config_text())
    if path is not None:
        try:
            data = _merge(data, tomllib.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise AcdcError(f"config file {path} does not exist") from None
        except IsADirectoryError:
            raise AcdcError(f"config file {path} is a directory, not a TOML file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AcdcError(f"config file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise AcdcError(f"config file {path} is not valid TOML: {exc}") from None
    from_env, by_field = env_overrides(model, os.environ if environ is None else environ)
    by_field |= {f"{section}.{key}": by_field[old] for old, section, key, _ in renamed_keys(model) if old in by_field}
    data = _merge(data, from_env)
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        return _validate(data, model)
    except AcdcError as exc:  # a value an environment variable set: the message names the variable too
        field = re.match(r"config field ([\w.]+):", str(exc))
        name = by_field.get(field.group(1).lower()) if field else None
        if name is None:
            raise
        raise AcdcError(f"{exc} (set by the environment variable {name})") from None


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # finite: every section refuses inf and nan
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise AcdcError(f"config value {value!r} has no TOML form")


def _toml_table(name: str, table: dict, lines: list[str]) -> None:
    lines.append(f"[{name}]")
    nested = {k: v for k, v in table.items() if isinstance(v, dict)}
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if k not in nested and v is not None]
    for key, sub in nested.items():
        lines.append("")
        _toml_table(f"{name}.{_toml_key(key)}", sub, lines)


def config_toml(config: Config) -> str:
    """A whole config as TOML that ``--config`` reads back to the same config (``acdc-engine config show``)."""
    lines: list[str] = []
    for section, table in config.model_dump(mode="json").items():
        if lines:
            lines.append("")
        _toml_table(_toml_key(section), table, lines)
    return "\n".join(lines) + "\n"


_BOUND_SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "min length"}


def _bound(constraint) -> str:
    """``ge=1`` style metadata as text, e.g. ``>= 1``."""
    name = type(constraint).__name__
    key = {"Ge": "ge", "Gt": "gt", "Le": "le", "Lt": "lt", "MinLen": "min_length"}.get(name)
    return f"{_BOUND_SYMBOLS[key]} {getattr(constraint, key)}" if key else name


def reference_markdown(model: type[Config] | None = None) -> str:
    """docs/config.md, generated from the models above and the plugins' sections (by default every installed
    plugin's; a test keeps docs/config.md equal to the built-in plugins' version)."""
    model = model or config_model()
    lines = [
        "# Config reference",
        "",
        "Generated from `engine/config.py` by `acdc-engine config-reference`; do not edit by hand.",
        "A run's config is the embedded default (`engine/default_config.toml`), laid over by",
        "`--config FILE.toml`, then by `ACDC_SECTION__KEY=value` environment variables (pydantic-settings;",
        "a list as JSON), then by `--set section.key=value` (values are read as TOML);",
        "`acdc-engine config show` prints the result.",
        "Sections marked as a plugin's own come from the installed plugins' `acdc_config_sections` hook.",
        "",
    ]
    for section, field in model.model_fields.items():
        part = field.annotation
        owner = "" if section in Config.model_fields else " (a plugin's own section)"
        lines += [f"## [{section}]{owner}", "", part.__doc__.strip(), ""]
        if part.renamed:
            moved = ", ".join(f"`{old}` (now `{key}`)" for old, key in part.renamed.items())
            rule = ("a user's config that still uses an old name is refused, naming the new one; a run stored "
                    "before the move reads as if it used the new one" if part.refuse_renamed else
                    "a config (or stored run) that still uses an old name reads as if it used the new one")
            lines += [f"Moved here from older configs: {moved}; {rule}.", ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, f in part.model_fields.items():
            default = f.get_default(call_default_factory=True)
            kind = getattr(f.annotation, "__name__", str(f.annotation)).replace("typing.", "")
            bounds = ", ".join(_bound(m) for m in f.metadata)
            lines.append(f"| `{key}` | {kind}{f' ({bounds})' if bounds else ''} | `{default!r}` | {f.description} |")
        lines.append("")
    return "\n".join(lines)
