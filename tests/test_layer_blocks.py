"""Crossover parameters per block of layers: which block each tensor takes, and one-line errors."""

from __future__ import annotations

import pytest

from acdc_engine.errors import AcdcError
from acdc_engine.models.layer_blocks import block_params, count_layers, layer_index, n_blocks

PARAMS = {"weights": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "density": 0.5, "layer_granularity": 2}


@pytest.mark.parametrize(("name", "weights"), [
    ("model.layers.0.self_attn.q_proj.weight", [1.0, 2.0]),
    ("model.layers.1.mlp.up_proj.weight", [1.0, 2.0]),
    ("model.layers.2.mlp.up_proj.weight", [3.0, 4.0]),
    ("model.layers.4.input_layernorm.weight", [5.0, 6.0]),  # the last block: one layer
    ("model.embed_tokens.weight", [1.0, 2.0]),  # before the layers: the first block (mergekit's pre-weights)
    ("transformer.wte.weight", [1.0, 2.0]),
    ("model.norm.weight", [5.0, 6.0]),  # after the layers: the last block
    ("lm_head.weight", [5.0, 6.0]),
])
def test_each_tensor_takes_its_blocks_weights(name, weights):
    assert block_params(PARAMS, name) == {"weights": weights, "density": 0.5}


def test_whole_model_parameters_pass_unchanged():
    params = {"weights": [1.0, 2.0]}
    assert block_params(params, "model.layers.7.mlp.up_proj.weight") is params


def test_layers_and_blocks_are_counted():
    names = ["model.embed_tokens.weight", "model.layers.0.a", "model.layers.29.a", "transformer.h.3.attn", "lm_head"]
    assert [layer_index(n) for n in names] == [None, 0, 29, 3, None]
    assert count_layers(names) == 30 and count_layers(["lm_head.weight"]) == 0
    assert [n_blocks(30, g) for g in (0, 1, 8, 10, 30, 64)] == [1, 30, 4, 3, 1, 1]


@pytest.mark.parametrize(("params", "culprit"), [
    ({**PARAMS, "layer_granularity": 0}, "layer_granularity"),
    ({**PARAMS, "weights": [1.0, 2.0]}, "layer_granularity"),
    (PARAMS, "layer 6"),
])
def test_bad_block_parameters_are_one_line_errors(params, culprit):
    with pytest.raises(AcdcError, match=culprit) as info:
        block_params(params, "model.layers.6.mlp.up_proj.weight")
    assert "\n" not in str(info.value)
