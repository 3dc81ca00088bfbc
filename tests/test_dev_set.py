"""The screened development set's rule (engine/evaluation/outside_benchmarks.py): which tasks are candidates and of what kind,
how their questions are asked and drawn; no model."""

import json
import zipfile

import pytest

from acdc_engine.evaluation.outside_benchmarks import (
    EVALS_BASIC, LETTER_INSTRUCTION, candidate_kind, choice_items, choice_replies, evals_wheel_tasks,
    humaneval_parts, is_correct, screened_order, submission,
)
from acdc_engine.errors import AcdcError


def examples(n, answer, text="Which one? " * 3):
    return [{"input": f"{text}{i}", "target": [answer(i)]} for i in range(n)]


def test_candidate_kind_tells_open_from_multiple_choice_from_the_data_alone():
    assert candidate_kind(examples(40, lambda i: str(i))) == "open"
    assert candidate_kind(examples(40, lambda i: "ABC"[i % 3])) == "choice"
    assert candidate_kind(examples(40, lambda i: f"Answer: {['x', 'y', 'z', 'w'][i % 4]}")) == "choice"
    assert candidate_kind(examples(40, lambda i: ["yes", "no"][i % 2])) is None  # a coin toss
    assert candidate_kind(examples(40, lambda i: "ABCDEF"[i % 6])) is None  # 6 values: neither
    assert candidate_kind(examples(39, lambda i: str(i))) is None  # too few questions
    assert candidate_kind(examples(40, lambda i: str(i), text="x" * 700)) is None  # long questions
    assert candidate_kind(examples(40, lambda i: str(i), text="日本語の質問")) is None  # not ASCII
    assert candidate_kind(examples(40, lambda i: "one two three four")) is None  # long answers


def test_choice_items_ask_letters_as_written_and_list_other_values_as_options():
    letters = choice_items("t", examples(40, lambda i: "ABCD"[i % 4]))
    n, item = letters[2]
    assert n == 3 and item.choices == ("A", "B", "C", "D") and item.answers == ("C",)
    assert item.prompt.endswith(LETTER_INSTRUCTION) and "\nA. " not in item.prompt
    assert choice_replies(item)[2] == "Answer: C" and is_correct(item, submission(item, "Answer: C"))
    words = choice_items("t", examples(40, lambda i: f"ANSWER: {['more likely', 'less likely', 'same'][i % 3]}"))
    item = words[0][1]
    assert item.choices == ("less likely", "more likely", "same") and item.answers == ("more likely",)
    assert "\nA. less likely\nB. more likely\nC. same\n" in item.prompt
    assert is_correct(item, submission(item, "Answer: B")) and not is_correct(item, submission(item, "Answer: A"))
    with pytest.raises(AcdcError, match="task t"):
        choice_items("t", [{"input": "q", "target": ["A", "B"]}])  # two values for one question


def test_screened_order_is_one_seeded_draw_whose_prefix_is_the_screening_sample():
    data = examples(150, lambda i: str(i))
    long = screened_order("t", data, "open", 0, 100)  # the screening sample is its first 20
    assert len(long) == 100 and [i.id for i in long] == [i.id for i in screened_order("t", data, "open", 0, 100)]
    assert [i.id for i in screened_order("u", data, "open", 0, 100)] != [i.id for i in long]  # seeded by the name
    assert {i.kind for i in long} == {"numeric"}
    assert len(screened_order("t", data[:50], "open", 0, 100)) == 50


def test_evals_wheel_tasks_of_the_text_scored_classes(tmp_path):
    path = tmp_path / "evals.whl"
    rows = [json.dumps({"input": f"{i} + 1", "ideal": str(i + 1)}) for i in range(3)]
    with zipfile.ZipFile(path, "w") as wheel:
        for name, cls in (("m", "match:Match"), ("i", "includes:Includes"), ("f", "fuzzy_match:FuzzyMatch"),
                          ("g", "modelgraded.classify:ModelBasedClassify")):
            wheel.writestr(f"evals/registry/evals/{name}.yaml", f"{name}.v0:\n  class: evals.elsuite.basic.{cls}\n"
                           f"  args:\n    samples_jsonl: {name}.jsonl\n".replace("basic.modelgraded", "modelgraded"))
            wheel.writestr(f"evals/registry/data/{name}.jsonl", "\n".join(rows))
    assert set(evals_wheel_tasks(path)) == {"m"}
    assert set(evals_wheel_tasks(path, EVALS_BASIC)) == {"m", "i", "f"}


def test_humaneval_parts_cut_by_prompt_length():
    parts = humaneval_parts(4)
    assert list(parts) == ["humaneval/q1", "humaneval/q2", "humaneval/q3", "humaneval/q4"]
    assert [len(p) for p in parts.values()] == [41, 41, 41, 41]
    longest = [max(len(i.code["prompt"]) for i in p) for p in parts.values()]
    shortest = [min(len(i.code["prompt"]) for i in p) for p in parts.values()]
    assert all(longest[k] <= shortest[k + 1] for k in range(3))
    assert len({i.id for p in parts.values() for i in p}) == 164


def test_a_reply_that_lists_several_options_chooses_none():
    item = choice_items("t", examples(40, lambda i: "ABCD"[i % 4]))[0][1]  # the answer is A
    assert is_correct(item, submission(item, "Answer: A"))
    assert is_correct(item, submission(item, "A. the first one"))
    for reply in ("A. red\nB. green\nC. blue\nD. black", "A. red B. green", "Answer: A) red, B) green",
                  "(A) red (B) green (C) blue"):
        assert not is_correct(item, submission(item, reply)), reply


def test_a_choice_whose_label_and_text_name_different_options_chooses_none():
    item = choice_items("t", examples(40, lambda i: ["equally likely", "less likely", "more likely"][i % 3]))[0][1]
    assert item.choices[0] == "equally likely" and item.answers == ("equally likely",)
    assert is_correct(item, submission(item, "A. equally likely")) and is_correct(item, submission(item, "A."))
    assert not is_correct(item, submission(item, "A. less likely"))  # a real reply of the base


def test_lines_copied_from_the_question_are_no_answer():
    from acdc_engine.evaluation.outside_benchmarks import Item

    passage = Item("1", "Tom has 12 apples and eats none of them.\nHow many apples are left?\n"
                   "End with 'Answer: <answer>'.", ("12",), "numeric")
    assert not is_correct(passage, submission(passage, "Tom has 12 apples and eats none of them."))
    assert is_correct(passage, submission(passage, "Tom has 12 apples and eats none of them.\nAnswer: 12"))
    assert is_correct(passage, submission(passage, "He still has 12 apples."))
    echo = Item("2", "Respond with \"Answer: entailment\", \"Answer: contradiction\", or \"Answer: neutral\".\n"
                "Premise: A dog runs. Hypothesis: An animal moves.", ("neutral",), "exact")
    assert not is_correct(echo, submission(echo, "Respond with \"Answer: entailment\", \"Answer: contradiction\", "
                                                 "or \"Answer: neutral\"."))
    assert is_correct(echo, submission(echo, "Answer: neutral"))
    sums = Item("3", "What is 5 - 0?\nEnd with 'Answer: <answer>'.", ("5",), "numeric")
    assert not is_correct(sums, submission(sums, "5 - 0 = 6"))  # an echoed sum is not the answer 5
    assert is_correct(sums, submission(sums, "5 - 0 = 5"))
    option = choice_items("t", [{"input": f"Which? {i}\nA. a long first option text\nB. a long second option text",
                                 "target": ["ABC"[i % 3]]} for i in range(40)])[0][1]
    assert is_correct(option, submission(option, "A. a long first option text"))  # naming an option is no copy


def test_a_copy_that_is_the_whole_exact_answer_still_counts():
    from acdc_engine.evaluation.outside_benchmarks import Item

    item = Item("56", "Sort these numbers in descending order.\n\n48.4,31.9,13.5,-16.7,-40.5\n"
                "End with 'Answer: <answer>'.", ("48.4,31.9,13.5,-16.7,-40.5",), "exact")
    assert is_correct(item, submission(item, "48.4,31.9,13.5,-16.7,-40.5"))  # a real reply of the base: right
    assert not is_correct(item, submission(item, "Sort these numbers in descending order."))
