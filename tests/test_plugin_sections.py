"""Plugin-owned settings (issue 41, item 3): [llm], [scientist], [novelty], [forge], [vllm] and [merge] are
sections their plugins declare; keys that moved are declared on the section (``renamed``), so old config files
and stored runs still read; config validation takes the sections instead of importing the plugin manager."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import Field

from acdc_engine.config import Config, PluginSection, config_model, load_config, validate
from acdc_engine.errors import AcdcError
from acdc_engine.plugin_manager import PluginContext
from acdc_engine.store import RunStore

#: The defaults these settings had in the engine's config model: a run reads the same values from the plugins.
DEFAULTS = {
    "llm": {"endpoint": "local", "model": "smollm2", "api_key_env": "OPENAI_API_KEY", "temperature": 0.7,
            "max_new_tokens": 768, "timeout_s": 120.0, "max_retries": 4, "concurrency": 4},
    "scientist": {"reflections": 3},
    "novelty": {"embedding_model": "all-MiniLM-L6-v2", "threshold": 0.85, "neighbours": 3, "judge": "rule"},
    "forge": {"forge_missing": True},
    "vllm": {"compile": True},
    "merge": {"crossover_std": 0.01, "merge_density": 0.5, "mutation_std": 0.05, "mutation_scale": "relative",
              "keep_rank": 256},
}


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "acdc_engine", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def test_importing_the_config_does_not_import_the_plugin_manager():
    code = ("import sys, acdc_engine.config; "
            "print(sorted(m for m in sys.modules if m.startswith('acdc_engine')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "acdc_engine.plugin_manager" not in done.stdout and "acdc_engine.hookspecs" not in done.stdout, done.stdout


def test_the_engine_config_names_no_plugin_setting():
    assert not {"llm", "scientist", "novelty", "forge", "vllm", "merge"} & set(Config.model_fields)
    assert "forge_missing" not in Config.model_fields["models"].annotation.model_fields
    assert "vllm_compile" not in Config.model_fields["generation"].annotation.model_fields
    import tomllib

    from acdc_engine.config import default_config_text

    default = tomllib.loads(default_config_text())
    assert set(default) == set(Config.model_fields)  # the engine's own sections only
    assert "forge_missing" not in default["models"] and "vllm_compile" not in default["generation"]


def test_the_plugins_sections_keep_the_old_defaults():
    config = load_config(None, environ={})
    assert {name: config.section(name).model_dump() for name in DEFAULTS} == DEFAULTS


def test_validation_takes_the_sections_it_is_given():
    from acdc_engine.plugins.forge import ForgeSection

    config = validate({"models": {"forge_missing": False}}, sections={"forge": ForgeSection})
    assert list(type(config).model_fields)[-1] == "forge" and config.section("forge").forge_missing is False
    with pytest.raises(AcdcError, match=r"config section \[llm\] is unknown"):
        validate({"llm": {"model": "x"}}, sections={"forge": ForgeSection})
    with pytest.raises(AcdcError, match=r"no section \[vllm\]"):
        load_config(None, environ={}, sections={}).section("vllm")


def test_an_old_config_file_with_moved_keys_still_loads(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text("[models]\nforge_missing = false\n\n[generation]\nvllm_compile = false\ndtype = 'float32'\n")
    config = load_config(old, environ={})
    assert config.section("forge").forge_missing is False and config.section("vllm").compile is False
    assert config.generation.dtype == "float32"
    assert load_config(None, ["models.forge_missing=false"], environ={}).section("forge").forge_missing is False
    # the new place wins over the old one, whichever layer set it
    assert load_config(old, ["forge.forge_missing=true"], environ={}).section("forge").forge_missing is True


def test_a_moved_merge_key_is_still_refused_in_a_users_config():
    with pytest.raises(AcdcError) as err:
        load_config(None, ["evolution.crossover_std=0.2"], environ={})
    assert str(err.value) == ("config field evolution.crossover_std has moved to the section [merge]: "
                              "set merge.crossover_std instead")


def old_layout() -> dict:
    """A run's stored config as written before the moves: the keys at their old places, no plugin sections."""
    data = json.loads(config_model()().model_dump_json())
    for name in DEFAULTS:
        del data[name]
    data["models"]["forge_missing"] = False
    data["generation"]["vllm_compile"] = False
    data["evolution"] |= {"crossover_std": 0.02, "keep_rank": 64}
    data["llm"] = {"model": "served", "endpoint": "http://127.0.0.1:8000/v1"}
    data["novelty"] = {"threshold": 0.5}
    return data


def test_a_stored_run_with_the_old_layout_still_reads(tmp_path):
    RunStore.create(tmp_path / "run", json.dumps(old_layout())).close()
    store = RunStore.open(tmp_path / "run")
    try:
        config = store.config()
    finally:
        store.close()
    assert config.section("forge").forge_missing is False and config.section("vllm").compile is False
    merge = config.section("merge")
    assert (merge.crossover_std, merge.keep_rank, merge.mutation_std) == (0.02, 64, 0.05)
    assert config.section("llm").model == "served" and config.section("novelty").threshold == 0.5
    dumped = config.model_dump()
    assert "forge_missing" not in dumped["models"] and "vllm_compile" not in dumped["generation"]
    assert "crossover_std" not in dumped["evolution"]
    assert validate(old_layout(), stored=True) == config


def test_unknown_key_in_a_plugin_section_is_one_line_naming_it():
    for override, field in (("llm.modle=x", "llm.modle"), ("forge.missing=false", "forge.missing"),
                            ("vllm.vllm_compile=false", "vllm.vllm_compile"),
                            ("novelty.treshold=0.5", "novelty.treshold")):
        with pytest.raises(AcdcError) as err:
            load_config(None, [override], environ={})
        assert str(err.value).startswith(f"config field {field}: Extra inputs are not permitted")
        assert "\n" not in str(err.value)


def test_overrides_and_variables_reach_the_plugin_sections():
    config = load_config(None, ["llm.model=served", "scientist.reflections=5", "vllm.compile=false"],
                         environ={"ACDC_LLM__TEMPERATURE": "0.1", "ACDC_NOVELTY__JUDGE": "llm",
                                  "ACDC_FORGE__FORGE_MISSING": "false"})
    assert (config.section("llm").model, config.section("llm").temperature) == ("served", 0.1)
    assert config.section("scientist").reflections == 5 and config.section("novelty").judge == "llm"
    assert config.section("forge").forge_missing is False and config.section("vllm").compile is False
    # a variable at a moved key's old place still works, and a bad value names the variable
    assert load_config(None, environ={"ACDC_GENERATION__VLLM_COMPILE": "false"}).section("vllm").compile is False
    with pytest.raises(AcdcError, match=r"config field forge.forge_missing: .*ACDC_MODELS__FORGE_MISSING\)$"):
        load_config(None, environ={"ACDC_MODELS__FORGE_MISSING": "maybe"})
    with pytest.raises(AcdcError, match=r"config field llm.temperature: .*ACDC_LLM__TEMPERATURE\)$"):
        load_config(None, environ={"ACDC_LLM__TEMPERATURE": "9"})


class Probe(PluginSection):
    """A section with renames of both kinds."""

    renamed = {"generation.probe_depth": "depth", "probe.old_width": "width"}
    depth: int = Field(1, ge=1)
    width: int = Field(2)


class StrictProbe(PluginSection):
    """A section that refuses its old names in a user's config."""

    renamed = {"run.probe_level": "level"}
    refuse_renamed = True
    level: int = 0


def test_renames_are_applied_generically_from_every_sections_declaration():
    sections = {"probe": Probe, "strict": StrictProbe}
    config = validate({"generation": {"probe_depth": 4}, "probe": {"old_width": 7}}, sections=sections)
    assert (config.section("probe").depth, config.section("probe").width) == (4, 7)
    config = validate({"generation": {"probe_depth": 4}, "probe": {"depth": 5}}, sections=sections)
    assert config.section("probe").depth == 5  # a value the section sets itself wins
    with pytest.raises(AcdcError, match=r"config field probe.depth: .*greater than or equal to 1"):
        validate({"generation": {"probe_depth": 0}}, sections=sections)  # the moved value is validated in place
    with pytest.raises(AcdcError, match=r"^config field run.probe_level has moved to the section \[strict\]: "
                                        r"set strict.level instead$"):
        validate({"run": {"probe_level": 3}}, sections=sections)
    assert validate({"run": {"probe_level": 3}}, stored=True, sections=sections).section("strict").level == 3
    data = {"generation": {"probe_depth": 4}}
    validate(data, sections=sections)
    assert data == {"generation": {"probe_depth": 4}}  # the caller's data is left as it was


def test_a_rename_to_no_key_of_the_section_is_refused():
    class Broken(PluginSection):
        """Renamed to a key it does not have."""

        renamed = {"models.thing": "nothing"}
        something: int = 0

    with pytest.raises(AcdcError, match=r"\[broken\] declares 'models.thing' renamed to 'nothing'"):
        config_model({"broken": Broken})


def test_the_plugins_read_their_own_sections(monkeypatch):
    from acdc_engine.plugins import forge
    from acdc_engine.plugins.llm import embeddings

    config = load_config(None, ["novelty.embedding_model=/some/dir", "models.forge_missing=false"], environ={})
    with PluginContext(config) as plugins, PluginContext(load_config(None, environ={})) as other:
        mine, theirs = (context.manager.get_plugin("embeddings") for context in (plugins, other))
        assert isinstance(mine, embeddings.Embeddings) and mine is not theirs  # one instance per context
        assert (mine.model, theirs.model) == ("/some/dir", embeddings.PACKAGED)
    called = []
    monkeypatch.setattr("acdc_engine.plugins.forge.command.forge_missing", lambda c, h: called.append(c))
    forge.acdc_prepare_run(config, None)
    assert called == []
    forge.acdc_prepare_run(load_config(None, ["models.seeds=['smollm2']"], environ={}), None)
    assert len(called) == 1


def test_config_show_prints_every_plugin_section_with_its_defaults(tmp_path):
    shown = cli("config", "show", "--set", "models.forge_missing=false")
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    for name in DEFAULTS:
        assert f"\n[{name}]\n" in shown.stdout, name
    assert "[forge]\nforge_missing = false\n" in shown.stdout and "[vllm]\ncompile = true\n" in shown.stdout
    assert 'model = "smollm2"' in shown.stdout and "reflections = 3" in shown.stdout
    assert "crossover_std = 0.01" in shown.stdout and 'judge = "rule"' in shown.stdout
    (tmp_path / "shown.toml").write_text(shown.stdout)
    assert load_config(tmp_path / "shown.toml", environ={}) == load_config(None, ["forge.forge_missing=false"],
                                                                           environ={})
    reference = cli("config-reference")
    assert reference.returncode == 0
    for name in DEFAULTS:
        assert f"## [{name}] (a plugin's own section)" in reference.stdout, name
    assert "`models.forge_missing` (now `forge_missing`)" in reference.stdout
