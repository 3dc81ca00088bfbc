"""The ctranslate2 backend (plugins/generation/ctranslate2_backend.py) against the transformers backend: the same greedy
answers in float32, the same likelihoods, its settings and errors, and a run that uses it."""

import pytest

from acdc_engine.errors import AcdcError
from acdc_engine.plugins.generation.ctranslate2_backend import CTranslate2Backend
from acdc_engine.plugins.generation.transformers_backend import TransformersBackend
from conftest import check_greedy_answers, check_real_seed_answers, check_seeded_sampling


@pytest.fixture(scope="module")
def pair(tiny_models):
    ref = TransformersBackend(tiny_models["a"], dtype="float32")
    ct2 = CTranslate2Backend(tiny_models["a"])
    yield ref, ct2
    ct2.close()


def test_greedy_answers_equal_the_transformers_backend_in_float32(pair, tiny_models):
    ref, ct2 = pair
    check_greedy_answers(ref, ct2, [tiny_models[m] / "model.safetensors" for m in ("a", "b")])  # b: swapped in
    assert ct2.complete(["The sea is", "1, 2, 3,"], max_new_tokens=8, stop=(",",)) == ref.complete(
        ["The sea is", "1, 2, 3,"], max_new_tokens=8, stop=(",",))


def test_likelihoods_equal_the_transformers_backend(pair, tiny_models):
    ref, ct2 = pair
    for b in pair:
        b.load_weights(tiny_models["a"] / "model.safetensors")
    replies = ["Answer: A", "Answer: B", "Answer: C", "Answer: a much longer reply"]
    assert ct2.reply_logprobs("Pick one.", replies) == pytest.approx(ref.reply_logprobs("Pick one.", replies), abs=1e-3)
    got = ct2.mean_logprob(["Say hi.", "Say hi."], ["hi there", ""])
    want = ref.mean_logprob(["Say hi.", "Say hi."], ["hi there", ""])
    assert got[0] == pytest.approx(want[0], abs=1e-4) and got[1] == want[1] == float("-inf")
    with pytest.raises(AcdcError, match="at least one token"):
        ct2.reply_logprobs("Pick one.", ["A", ""])


def test_sampling_is_reproducible_from_its_seed(pair, tiny_models):
    _, ct2 = pair
    ct2.load_weights(tiny_models["a"] / "model.safetensors")
    check_seeded_sampling(ct2)


def test_bad_settings_and_weights_get_one_line_errors(tiny_models, tiny_config, plugin_manager, tmp_path):
    with pytest.raises(AcdcError, match="compute_type = 'float16' is not offered"):
        CTranslate2Backend(tiny_models["a"], compute_type="float16")
    with pytest.raises(AcdcError, match="ctranslate2.compute_type"):
        tiny_config(**{"ctranslate2.compute_type": "float8"})
    config = tiny_config(**{"generation.backend": "ctranslate2"})
    backend = plugin_manager.hook.acdc_make_backend(config=config, model_dir=tiny_models["a"])
    try:
        assert isinstance(backend, CTranslate2Backend)
        wide = tiny_models["wide"] / "model.safetensors"
        with pytest.raises(AcdcError, match="wide.*has shape"):
            backend.load_weights(wide)
    finally:
        backend.close()


def test_the_real_seed_answers_as_with_the_transformers_backend(smollm2_dir):
    check_real_seed_answers(smollm2_dir, CTranslate2Backend)
