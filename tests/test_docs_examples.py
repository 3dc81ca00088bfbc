"""The plugin author's guide's example works as printed."""

from __future__ import annotations

import re
import types
from pathlib import Path

import torch
from safetensors.torch import load_file

from acdc_engine.models.materialise import materialise
from acdc_engine.recipe import Recipe

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def guide_module() -> types.ModuleType:
    """The ``my_acdc_plugin.py`` block of docs/plugins.md, as a module."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
                 if b.startswith("# my_acdc_plugin.py"))
    module = types.ModuleType("my_acdc_plugin")
    exec(compile(block, str(GUIDE), "exec"), module.__dict__)
    return module


def test_the_guides_merge_operator_builds_a_child(tiny_models, tmp_path):
    plugin = guide_module()
    (method,) = plugin.acdc_merge_methods().values()
    files = [tiny_models[n] / "model.safetensors" for n in ("a", "b")]
    recipe = Recipe.make(parents=("m0001", "m0002"), crossover=method.name,
                         crossover_params=method.draw_params(2, None, None), seed=0)
    out = tmp_path / "child.safetensors"
    materialise(recipe, parent_files=files, base_file=files[0], merge=method, mutation=None, out_file=out)
    child, a, b = load_file(out), load_file(files[0]), load_file(files[1])
    name = next(iter(a))
    assert torch.allclose(child[name].float(), (a[name].float() + b[name].float()) / 2, atol=1e-2)


def test_the_guides_config_section_validates_and_reaches_the_plugin():
    import pytest

    from acdc_engine.config import config_model, validate
    from acdc_engine.errors import AcdcError

    block = next(b for b in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S) if "class MySection" in b)
    module = types.ModuleType("my_section_plugin")
    exec(compile(block, str(GUIDE), "exec"), module.__dict__)
    plugin = module.MyPlugin()  # as a plugin context registers it: a fresh instance
    model = config_model(plugin.acdc_config_sections())
    config = model.model_validate({"myplugin": {"depth": 3}})
    plugin.acdc_configure(config, None)
    assert plugin.depth == 3 and model().section("myplugin").depth == 2
    with pytest.raises(AcdcError, match=r"config section \[myplugin\] is unknown"):
        validate({"myplugin": {"depth": 3}})  # not installed: not a section of the installed plugins' config
