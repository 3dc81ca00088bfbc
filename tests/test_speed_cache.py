"""Time accounting, the evaluation cache across generations and resume, batch sizing."""

from __future__ import annotations


import pytest
import torch
from click.testing import CliRunner

from acdc_engine.ui.cli import main
from acdc_engine.digest import recipe_digest
from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl
from acdc_engine.run.loop import Coevolution
from acdc_engine.plugin_manager import PluginContext
from acdc_engine.plugins.generation.transformers_backend import MAX_AUTO_BATCH, TransformersBackend, auto_batch_size
from acdc_engine.recipe import Recipe
from acdc_engine.store import RunStore
from acdc_engine.run.timing import PHASES
from conftest import run_on_store


class CountingBackend:
    """The real transformers backend, counting the prompts it is asked per generation."""

    def __init__(self):
        self.calls: dict[int, int] = {}
        self.gen = None

    @hookimpl(tryfirst=True)
    def acdc_make_backend(self, config, model_dir):
        inner = TransformersBackend(model_dir, dtype=config.generation.dtype, batch_size=config.generation.batch_size)
        counter = self

        class Counted:
            def __getattr__(self, name):
                return getattr(inner, name)

            def generate(self, instructions, **kw):
                counter.calls[counter.gen] = counter.calls.get(counter.gen, 0) + len(instructions)
                return inner.generate(instructions, **kw)

        return Counted()

    @hookimpl
    def acdc_event(self, kind, data):
        if kind == "generation_started":
            self.gen = data["generation"]


class CrashAt:
    """Stops the run when generation ``gen`` reaches its checkpoint (after all its answers)."""

    def __init__(self, gen):
        self.gen = gen

    @hookimpl
    def acdc_event(self, kind, data):
        if kind == "step" and data["name"] == "checkpoint" and data["generation"] == self.gen:
            raise KeyboardInterrupt


def run(config, store, *plugins):
    return run_on_store(config, store, plugins)


def test_every_generation_records_where_its_time_went(tiny_config, tmp_path):
    config = tiny_config(**{"run.generations": 1})
    store = RunStore.create(tmp_path / "run", config.model_dump_json())
    run(config, store)
    stats = store.all_stats()
    store.close()
    for s in stats:
        phases = sum(s[f"time_{p.replace(' ', '_')}_s"] for p in PHASES) + s["time_other_s"]
        assert s["time_total_s"] == pytest.approx(phases, abs=0.01) and s["time_total_s"] > 0
        assert s["time_generate_s"] > 0 and s["time_materialise_s"] > 0
        assert 0 < s["tokens"] <= s["answers_generated"] * 4  # max_new_tokens = 4
    assert stats[0]["time_adapt_tasks_s"] > 0  # the initial pool is made in generation 0
    out = CliRunner().invoke(main, ["status", str(tmp_path / "run")])
    assert out.exit_code == 0 and "time per generation" in out.output


def test_a_resumed_run_and_a_reevaluation_hit_the_cache(tiny_config, tmp_path):
    config = tiny_config(**{"run.generations": 2})
    store = RunStore.create(tmp_path / "run", config.model_dump_json())
    first = CountingBackend()
    with pytest.raises(KeyboardInterrupt):
        run(config, store, first, CrashAt(1))
    assert store.last_generation() == 0 and first.calls[1] > 0  # generation 1 answered, not committed
    store.close()

    store = RunStore.open(tmp_path / "run", writer=True)
    again = CountingBackend()
    evo = run(store.config(), store, again)
    assert 1 not in again.calls  # every answer of generation 1 came from the cache
    assert again.calls[2] > 0
    gen1 = store.all_stats()[1]
    assert gen1["answers_generated"] == 0 and gen1["answers_cached"] >= first.calls[1]

    # the same run uninterrupted gives the same result
    clean = RunStore.create(tmp_path / "clean", config.model_dump_json())
    run(config, clean)
    assert clean.scores() == store.scores()
    assert clean.generation(2)["archive"] == store.generation(2)["archive"]
    clean.close()

    # re-evaluating the archive on the whole pool generates nothing
    reeval = CountingBackend()
    context = PluginContext(evo.cfg, extra=[reeval]).open()
    evo = Coevolution(evo.cfg, store, context)
    try:
        evo.restore()
        members = evo.archive.member_ids()
        before = {m: evo.evaluator.scores[(m, t)] for m in members for t in evo.pool.active if (m, t) in evo.evaluator.scores}
        answers = evo.evaluator.answer(members, evo.pool.active, 3)
    finally:
        evo.close()
        context.close()
        store.close()
    assert reeval.calls == {} and len(answers) == len(members) and before


def test_weights_digest_follows_recipe_and_parents():
    r = Recipe.make(parents=("m0001", "m0002"), crossover="linear", crossover_params={"weights": [1.0, 1.0]},
                    mutation="svd", mutation_params={"std": 0.1}, seed=7)
    same = Recipe.make(parents=("m0005", "m0006"), crossover="linear", crossover_params={"weights": [1.0, 1.0]},
                       mutation="svd", mutation_params={"std": 0.1}, seed=7)
    d = recipe_digest(r, parent_digests=["a", "b"], base_digest="z")
    assert d == recipe_digest(same, parent_digests=["a", "b"], base_digest="z")  # ids do not matter, weights do
    assert d != recipe_digest(r, parent_digests=["a", "c"], base_digest="z")
    assert d != recipe_digest(r, parent_digests=["a", "b"], base_digest="y")
    assert d != recipe_digest(Recipe.make(**{**r.__dict__, "seed": 8, "crossover_params": {"weights": [1.0, 1.0]},
                                             "mutation_params": {"std": 0.1}}), parent_digests=["a", "b"],
                              base_digest="z")


def test_auto_batch_size_follows_free_memory(tiny_models):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_models["a"])
    assert auto_batch_size(cfg, 128, 4, available=1 << 20) == 1
    assert auto_batch_size(cfg, 128, 4, available=1 << 40) == MAX_AUTO_BATCH
    mid = auto_batch_size(cfg, 128, 4, available=64 << 20)
    assert 1 < mid < MAX_AUTO_BATCH
    assert auto_batch_size(cfg, 512, 4, available=64 << 20) < mid  # longer sequences, fewer of them


def test_batched_answers_equal_single_prompt_answers(tiny_models):
    """Length-sorted, left-padded batches with early stop change no fp32 greedy
    answer against one plain ``model.generate()`` per prompt."""
    prompts = ["What is 2 + 3?", "Name a colour.", "Reverse the word 'stone'. Answer: <word>", "Hi"]
    auto = TransformersBackend(tiny_models["a"], dtype="float32", batch_size=0)
    single, tokens = [], 0
    for prompt in prompts:
        enc = auto.tokenizer(auto._prompt([{"role": "user", "content": prompt}]), return_tensors="pt")
        out = auto.model.generate(**enc, max_new_tokens=12, do_sample=False, eos_token_id=auto.eos_ids,
                                  pad_token_id=auto.tokenizer.pad_token_id)[0, enc.input_ids.shape[1]:].tolist()
        end = next((k + 1 for k, t in enumerate(out) if t in auto.eos_ids), len(out))
        single.append(auto.tokenizer.decode(out[:end], skip_special_tokens=True))
        tokens += end
    assert auto.generate(prompts, max_new_tokens=12) == single
    assert auto.generated_tokens == tokens > 0


def test_sampled_answers_follow_the_seed(tiny_models):
    backend = TransformersBackend(tiny_models["a"], dtype="float32", batch_size=0)
    prompts = ["Name a colour.", "Count to three.", "What is 2+2?"]
    first = backend.generate(prompts, max_new_tokens=8, temperature=0.9, seed=1)
    assert backend.generate(prompts, max_new_tokens=8, temperature=0.9, seed=1) == first
    assert backend.generate(prompts, max_new_tokens=8, temperature=0.9, seed=2) != first


def test_reply_logprobs_equal_one_full_forward_pass_per_reply(tiny_models):
    """The replies continue the prompt's KV cache as one right-padded batch; each total equals the sum of
    log-probabilities from a plain forward pass over prompt + reply, whatever the replies' lengths."""
    backend = TransformersBackend(tiny_models["a"], dtype="float32", batch_size=0)
    instruction = "Which is a fruit?\n\nA. apple\nB. chair"
    replies = ["Answer: A", "Answer: B", "B", "the apple, surely"]
    prompt = backend.tokenizer(backend._prompt([{"role": "user", "content": instruction}]),
                               add_special_tokens=False).input_ids
    expected = []
    for reply in replies:
        tail = backend.tokenizer(reply, add_special_tokens=False).input_ids
        with torch.no_grad():
            logits = backend.model(input_ids=torch.tensor([prompt + tail])).logits[0, len(prompt) - 1:-1]
        logp = torch.log_softmax(logits.float(), dim=-1).gather(1, torch.tensor(tail)[:, None])
        expected.append(float(logp.sum()))
    assert backend.reply_logprobs(instruction, replies) == pytest.approx(expected, abs=1e-4)


def test_replies_of_several_questions_at_once_score_as_one_question_at_a_time(tiny_models):
    backend = TransformersBackend(tiny_models["a"], dtype="float32")
    questions = [("Pick one: A, B or C?", ["Answer: A", "Answer: B", "Answer: C"]),
                 ("Which is larger, 2 or 3? Say it with a long explanation, please.", ["2", "3 because it is"]),
                 ("x", ["Answer: A", "Answer: B", "Answer: C", "Answer: D", "Answer: E"])]
    together = backend.replies_logprobs(questions)
    for (question, replies), scores in zip(questions, together):
        assert scores == pytest.approx(backend.reply_logprobs(question, replies), abs=1e-4)
    with pytest.raises(AcdcError, match="at least one token"):
        backend.replies_logprobs([("q", ["A", ""])])
