"""Config: defaults, TOML files, overrides, and one-line errors naming the field."""

import pytest

from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError


def test_default_config_is_the_embedded_one():
    cfg = load_config()
    assert cfg.run.generations == 3 and cfg.run.plugins == ["merge", "taskgen"]
    assert cfg.models.seeds == ["smollm2", "forged:smollm2"] and cfg.evolution.dns_k == 3


def test_file_and_overrides_are_laid_over_defaults(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[evolution]\narchive_size = 9\n")
    cfg = load_config(f, ["run.generations=7", "models.seeds=['a/b', 'c/d']", "generation.dtype=float32"])
    assert cfg.evolution.archive_size == 9 and cfg.evolution.dns_k == 3
    assert cfg.run.generations == 7 and cfg.models.seeds == ["a/b", "c/d"]
    assert cfg.generation.dtype == "float32"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evolution.archive_size=0", "config field evolution.archive_size: Input should be greater than or equal to 1 (got 0)"),
        ("generation.dtype=float16", "config field generation.dtype: Input should be 'auto', 'float32' or 'bfloat16' (got 'float16')"),
        ("run.colour=red", "config field run.colour: Extra inputs are not permitted (got 'red')"),
        ("tasks.initial_families=99", "config field tasks: Value error, initial_families (99) exceeds active_cap (24)"),
        ("run.generations=many", "config field run.generations: Input should be a valid integer, unable to parse string as an integer (got 'many')"),
    ],
)
def test_bad_value_names_the_field_in_one_line(override, message):
    with pytest.raises(AcdcError) as err:
        load_config(None, [override])
    assert str(err.value) == message


def test_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(AcdcError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\n")
    with pytest.raises(AcdcError, match="bad.toml is not valid TOML"):
        load_config(bad)


def test_malformed_override_is_refused():
    with pytest.raises(AcdcError, match="expected section.key=value"):
        load_config(None, ["generations"])


def test_embedded_toml_and_model_defaults_agree():
    from acdc_engine.config import config_model

    assert load_config() == config_model()()  # the engine's sections and the built-in plugins' own


def test_config_reference_in_docs_is_current():
    from pathlib import Path

    from acdc_engine.config import reference_markdown

    doc = Path(__file__).parents[1] / "docs" / "config.md"
    assert doc.read_text() == reference_markdown(), "regenerate: acdc-engine config-reference > docs/config.md"
