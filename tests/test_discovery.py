"""The discovery measurement's arithmetic (engine/evaluation/discovery_measure.py) and its BIG-bench sdist reader."""

import io
import json
import tarfile
import zipfile

import numpy as np
import pytest

from acdc_engine.evaluation.outside_benchmarks import (
    Item, draw_questions, eligible_open_tasks, evals_wheel_tasks, is_correct, load_bigbench_sdist, submission,
)
from acdc_engine.evaluation.discovery_measure import (
    AnswerBook, Member, best_cover, choice_pick, coverage_by_kind, forces_by_generation, gap_interval,
    guessing_coverage, padded, pick, random_pick_coverage, system_coverage,
)
from acdc_engine.errors import AcdcError

ITEMS = [Item(str(i), f"q{i}", ("a",), "exact") for i in range(4)]


def book_with(verdicts: dict, tmp_path):
    """An AnswerBook whose answers come from a table (weights file name, sample) -> verdicts."""
    calls = []

    def answer(weights, temperature, seed, n, items):
        calls.append((weights.name, temperature, n))
        rows = [verdicts[(weights.name, None if temperature == 0 else j)] for j in range(n)]
        return [list(col) for col in zip(*rows)]

    return AnswerBook(ITEMS, tmp_path / "cache.json", answer), calls


def weights(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(name.encode())
    return path


def test_coverage_counts_a_question_once_whoever_answers_it(tmp_path):
    a, b = weights(tmp_path, "a"), weights(tmp_path, "b")
    book, calls = book_with({("a", None): [1, 1, 0, 0], ("b", None): [0, 1, 1, 0]}, tmp_path)
    assert system_coverage(book, [Member("a", a)]) == 0.5
    assert system_coverage(book, [Member("a", a), Member("b", b)]) == 0.75
    assert len(calls) == 2  # each member answered once
    again, calls = book_with({}, tmp_path)  # from the cache file: nothing answered again
    assert system_coverage(again, [Member("a", a), Member("b", b)]) == 0.75 and calls == []


def test_coverage_by_kind_and_the_guessing_reference(tmp_path):
    items = [Item("0", "q", ("b",), "choice", choices=("a", "b")), Item("1", "q", ("a",), "choice", choices=("a", "b", "c", "d")),
             Item("2", "q", ("7",), "numeric"), Item("3", "q", (), "code")]
    a = weights(tmp_path, "a")
    book = AnswerBook(items, tmp_path / "cache.json", lambda w, t, s, n, asked: [[True], [False], [True], [False]])
    assert coverage_by_kind(book, [Member("a", a)]) == {"choice": 0.5, "code": 0.0, "open": 1.0}
    guess = guessing_coverage(items, 2)  # 2 guesses: 1 - 1/4 on two options, 1 - 9/16 on four
    assert guess["choice"] == pytest.approx((0.75 + 7 / 16) / 2)
    assert guess["all"] == pytest.approx((0.75 + 7 / 16) / 4) and guess["open"] == guess["code"] == 0.0


def test_each_sample_is_drawn_with_its_own_seed_and_cached(tmp_path):
    c = weights(tmp_path, "c")
    seeds = []

    def answer(w, temperature, seed, n, items):
        seeds.append((temperature, seed, n))
        return [[seed == i] for i in range(4)]

    book = AnswerBook(ITEMS, tmp_path / "cache.json", answer)
    assert system_coverage(book, [Member("c", c, sample=i) for i in range(3)]) == 0.75
    assert system_coverage(book, [Member("c", c, sample=i) for i in range(2)]) == 0.5
    assert seeds == [(0.7, 0, 1), (0.7, 1, 1), (0.7, 2, 1)]


def test_likelihood_answers_replace_the_generated_ones_on_multiple_choice_only(tmp_path):
    items = [Item("0", "q", ("b",), "choice", choices=("a", "b")), Item("1", "q", ("7",), "numeric"),
             Item("2", "q", ("a",), "choice", choices=("a", "b", "c"))]
    a = weights(tmp_path, "a")
    chosen = []

    def choose(w, temperature, seed):
        chosen.append((temperature, seed))
        return [True, False]  # one verdict per multiple-choice item, in order

    asked = []

    def answer(w, t, s, n, questions):  # the generated answers: only the open question is asked
        asked.append([q.id for q in questions])
        return [[True] for _ in questions]

    book = AnswerBook(items, tmp_path / "cache.json", answer, choose=choose)
    assert book.verdicts(Member("a", a)) == [True, True, False]
    assert book.verdicts(Member("a", a, sample=1)) == [True, True, False] and chosen == [(0.0, 0), (0.7, 1)]
    assert asked == [["1"], ["1"]]
    generated = AnswerBook(items, tmp_path / "cache.json", lambda w, t, s, n, q: [[False], [True], [True]])
    assert generated.verdicts(Member("a", a)) == [False, True, True]  # generated all three, cached apart
    again = AnswerBook(items, tmp_path / "cache.json", None, choose=lambda *a: pytest.fail("answered again"))
    assert again.verdicts(Member("a", a)) == [True, True, False]
    assert AnswerBook(items, tmp_path / "cache.json", None).verdicts(Member("a", a)) == [False, True, True]


def test_a_likelihood_answer_is_the_likeliest_reply_greedily_and_a_draw_at_a_temperature():
    rng = np.random.default_rng(0)
    assert choice_pick([-3.0, -0.5, -0.5, -9.0], 0.0, rng) == 1  # the first of equals
    draws = [choice_pick([np.log(0.7), np.log(0.2), np.log(0.1)], 1.0, rng) for _ in range(4000)]
    assert np.bincount(draws, minlength=3) / 4000 == pytest.approx([0.7, 0.2, 0.1], abs=0.03)
    cooler = [choice_pick([np.log(0.7), np.log(0.2), np.log(0.1)], 0.5, rng) for _ in range(4000)]
    assert np.mean(np.array(cooler) == 0) == pytest.approx(0.49 / 0.54, abs=0.03)  # p^(1/T), renormalised


def test_gap_interval_is_a_seeded_paired_bootstrap_over_questions():
    same = np.array([1, 0, 1, 0] * 25)
    assert gap_interval(same, same) == (0.0, 0.0)  # paired: a system against itself never differs
    a, b = np.zeros(100), np.zeros(100)
    a[:10] = 1  # a covers 10 questions that b does not, and b none that a does not
    lo, hi = gap_interval(a, b)
    assert 0 < lo < 0.10 < hi < 0.2 and gap_interval(a, b) == (lo, hi)
    assert gap_interval(b, a) == pytest.approx((-hi, -lo))
    b[50:60] = 1  # as many the other way: level on the whole, and the interval straddles 0
    lo, hi = gap_interval(a, b)
    assert lo < 0 < hi and hi - lo > 0.1
    assert gap_interval(a[:0], b[:0]) == (0.0, 0.0)


def test_seed_experts_are_padded_by_samples_round_robin(tmp_path):
    s1, s2 = Member("s1", tmp_path / "1"), Member("s2", tmp_path / "2")
    out = padded([s1], [s1, s2], 4)
    assert [(m.model, m.sample) for m in out] == [("s1", None), ("s1", 0), ("s2", 0), ("s1", 1)]
    assert padded([s1, s2], [s1, s2], 1) == [s1]


def test_task_forces_grow_with_the_models_born_up_to_each_generation():
    models = [{"id": "m1", "generation": 0, "status": "elite"}, {"id": "m2", "generation": 1, "status": "retired"},
              {"id": "m3", "generation": 1, "status": "rejected"}, {"id": "m4", "generation": 2, "status": "elite"}]
    tasks = [{"id": t, "generation": g} for t, g in (("t1", 0), ("t2", 0), ("t3", 2))]
    scores = {("m1", "t1"): 1.0, ("m2", "t2"): 1.0, ("m3", "t1"): 1.0, ("m3", "t2"): 1.0, ("m3", "t3"): 1.0,
              ("m4", "t3"): 1.0, ("m4", "t1"): 0.4}
    forces = forces_by_generation(models, tasks, scores, 0.5, 2)
    assert forces[0] == ["m1"]  # alone; m2 is not born yet
    assert sorted(forces[1]) == ["m1", "m2"]  # m3 rejected: never picked
    assert forces[2][0] in ("m1", "m2", "m4") and len(forces[2]) == 2
    assert pick(["m1", "m4"], ["t1", "t3"], scores, 0.5, 1) in (["m1"], ["m4"])


def sdist(tmp_path, tasks: dict) -> str:
    path = tmp_path / "bigbench-1.0.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, body in tasks.items():
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}/task.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_sdist_tasks_give_a_seeded_draw_of_short_questions(tmp_path):
    examples = [{"input": f"{i} + 1?", "target": str(i + 1)} for i in range(30)]
    examples += [{"input": "long", "target": "far too many words here"}]
    mc = [{"input": f"pick {i}", "target_scores": {"x": 1, "y": 0}} for i in range(25)]
    path = sdist(tmp_path, {"add": {"examples": examples}, "mc": {"examples": mc, "task_prefix": "Q: "}})
    add, choice = load_bigbench_sdist(path, ["add", "mc"], 20, 0)
    assert len(add.items) == 20 and all("far too many" not in i.prompt for i in add.items)
    assert choice.items[0].kind == "choice" and choice.items[0].prompt.startswith("Q: pick")
    assert [i.id for i in load_bigbench_sdist(path, ["add"], 20, 0)[0].items] == [i.id for i in add.items]
    assert [i.id for i in load_bigbench_sdist(path, ["add"], 20, 1)[0].items] != [i.id for i in add.items]


def test_subtasks_are_named_by_their_task_and_open_only_drops_multiple_choice(tmp_path):
    both = [{"input": f"{i} + 2?", "target": str(i + 2)} for i in range(20)]
    both += [{"input": f"pick {i}", "target_scores": {"x": 1, "y": 0}} for i in range(20)]
    path = sdist(tmp_path, {"sums/two": {"examples": both}})
    (mixed,) = load_bigbench_sdist(path, ["sums/two"], 30, 0)
    assert {i.kind for i in mixed.items} == {"exact", "choice"}
    (opened,) = load_bigbench_sdist(path, ["sums/two"], 20, 0, open_only=True)
    assert opened.name == "sums/two" and {i.kind for i in opened.items} == {"exact"}
    (numbers,) = load_bigbench_sdist(path, ["sums/two"], 20, 0, open_only=True, numeric=True)
    item = numbers.items[0]
    assert {i.kind for i in numbers.items} == {"numeric"}
    assert is_correct(item, submission(item, f"0 + 2 = {item.answers[0]}"))  # the reply's last number
    assert not is_correct(item, submission(item, f"{item.answers[0]} + 1 = 99"))
    with pytest.raises(AcdcError, match="20 short questions, fewer than 21"):
        load_bigbench_sdist(path, ["sums/two"], 21, 0, open_only=True)


@pytest.mark.parametrize("case, message", [
    ("missing", "cannot read it"),
    ("garbage", "cannot read it"),
    ("unknown", "no JSON task 'nope'"),
    ("few", "2 short questions, fewer than 20"),
    ("notjson", "not JSON"),
])
def test_bad_sdist_input_is_one_line_naming_it(tmp_path, case, message):
    if case == "missing":
        path = tmp_path / "absent.tar.gz"
    elif case == "garbage":
        path = tmp_path / "garbage.tar.gz"
        path.write_bytes(b"not a tarball")
    else:
        path = sdist(tmp_path, {"few": {"examples": [{"input": "a", "target": "b"}] * 2}, "notjson": "{oops"})
    name = {"unknown": "nope", "few": "few", "notjson": "notjson"}.get(case, "few")
    with pytest.raises(AcdcError, match=message) as err:
        load_bigbench_sdist(path, [name], 20, 0)
    assert "\n" not in str(err.value)


def evals_wheel(tmp_path, specs: dict, data: dict) -> str:
    """A wheel shaped like OpenAI's evals: registry specs (YAML) and their samples files (JSON lines)."""
    path = tmp_path / "evals-3.0.1.post1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in specs.items():
            wheel.writestr(f"evals/registry/evals/{name}.yaml", text)
        for name, rows in data.items():
            wheel.writestr(f"evals/registry/data/{name}", "\n".join(r if isinstance(r, str) else json.dumps(r)
                                                                   for r in rows))
    return path


def test_evals_wheel_tasks_are_its_exact_answer_samples_as_questions(tmp_path):
    system = {"role": "system", "content": "Add."}
    adds = [{"input": [system, {"role": "user", "content": f"{i} + 1"}], "ideal": str(i + 1)} for i in range(25)]
    adds += ["not json", json.dumps([1, 2]),  # lines that are no sample are skipped
             {"input": [system, {"role": "system", "name": "example_user", "content": "1 + 1"}], "ideal": "2"}]
    specs = {"adds": "adds.v0:\n  class: evals.elsuite.basic.match:Match\n  args:\n    samples_jsonl: adds/samples.jsonl\n",
             "loose": "loose.v0:\n  class: evals.elsuite.basic.includes:Includes\n  args:\n    samples_jsonl: loose.jsonl\n",
             "broken": "{oops: [", "words": "words.v0:\n  class: evals.elsuite.basic.match:Match\n  args:\n"
             "    samples_jsonl: words.jsonl\n"}
    yes_no = [{"input": f"Is {i} even?", "ideal": ["Yes", "No"][i % 2]} for i in range(30)]
    path = evals_wheel(tmp_path, specs, {"adds/samples.jsonl": adds, "loose.jsonl": adds, "words.jsonl": yes_no})
    tasks = evals_wheel_tasks(path)
    assert set(tasks) == {"adds/samples", "words"}  # only the Match class; a broken spec names no task
    assert len(tasks["adds/samples"]) == 25 and tasks["adds/samples"][3] == {"input": "Add.\n\n3 + 1", "target": ["4"]}
    assert eligible_open_tasks(tasks, 20) == ["adds/samples"]  # yes / no answers are multiple choice in disguise
    assert eligible_open_tasks(tasks, 26) == []
    bench = draw_questions("adds/samples", tasks["adds/samples"], 20, 0, open_only=True, numeric=True)
    assert len(bench.items) == 20 and {i.kind for i in bench.items} == {"numeric"}
    item = bench.items[0]
    assert item.prompt.startswith("Add.\n\n") and is_correct(item, submission(item, f"Answer: {item.answers[0]}"))


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"), (b"not a zip", "cannot read it"), ("empty", "holds no registry task"),
])
def test_a_bad_evals_wheel_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "evals.whl"
    if content == "empty":
        path = evals_wheel(tmp_path, {}, {})
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(AcdcError, match=message) as err:
        evals_wheel_tasks(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_best_cover_tries_every_subset_where_greedy_would_miss_and_says_when_it_falls_back():
    hits = np.array([[1, 1, 1, 1, 0, 0],   # the largest row: greedy takes it first
                     [1, 1, 0, 0, 1, 0],
                     [0, 0, 1, 1, 0, 1],
                     [0, 0, 0, 0, 0, 0]], dtype=bool)
    assert best_cover(hits, 2) == ([1, 2], True)  # 6 questions; greedy's pick covers 5
    rows, exact = best_cover(hits, 2, max_sets=1)
    assert (rows, exact) == ([0, 1], False)
    assert best_cover(hits, 9) == ([0, 1, 2, 3], True)  # more asked than there are members: all of them
    assert best_cover(np.zeros((3, 4), dtype=bool), 2) == ([0, 1], True)  # ties go to the first in order
    assert best_cover([], 3) == ([], True)


def test_random_pick_coverage_is_the_exact_mean_over_every_subset():
    hits = np.array([[1, 0, 0, 0],
                     [1, 1, 0, 0],
                     [0, 0, 1, 0]], dtype=bool)
    # pairs {0,1}: q0 q1; {0,2}: q0 q2; {1,2}: q0 q1 q2 -> 2, 2, 3 of 4 questions
    assert random_pick_coverage(hits, 2) == pytest.approx((2 + 2 + 3) / 3 / 4)
    assert random_pick_coverage(hits, 1) == pytest.approx((1 + 2 + 1) / 3 / 4)
    assert random_pick_coverage(hits, 5) == pytest.approx(3 / 4)  # every member
    assert random_pick_coverage(np.zeros((0, 4), dtype=bool), 2) == 0.0


def test_answers_of_another_backend_or_precision_are_not_taken_from_the_cache(tmp_path):
    a = weights(tmp_path, "a")
    calls = []

    def answer(w, t, s, n, items):
        calls.append(n)
        return [[True] for _ in items]

    for decoding in ("transformers/bfloat16", "ctranslate2/float32", "transformers/bfloat16"):
        AnswerBook(ITEMS, tmp_path / "cache.json", answer, decoding=decoding).verdicts(Member("a", a))
    assert len(calls) == 2  # the third is the first's, from the cache
