"""The tolerant parser on the ugly replies LLMs really write."""

from __future__ import annotations

import pytest

from acdc_engine.plugins.scientist.parse import ParseError, declares_done, parse_task

CODE = '''class TaskFamily:
    @staticmethod
    def get_tasks():
        return {"1": {"a": 2, "b": 3}}

    @staticmethod
    def get_instructions(t):
        return f"What is {t['a']} + {t['b']}? Answer: <n>"

    @staticmethod
    def score(t, submission):
        return float(submission.strip() == str(t["a"] + t["b"]))
'''


def test_clean_reply():
    text = ('```json\n{"name": "add-small", "description": "Add two small numbers.", "capability": "arithmetic",'
            ' "difficulty": 2}\n```\n\n```python\n' + CODE + "```\n")
    d = parse_task(text)
    assert (d.name, d.description, d.capability, d.difficulty) == ("add-small", "Add two small numbers.",
                                                                   "arithmetic", 2)
    assert d.source == CODE


def test_prose_around_single_quotes_and_trailing_commas():
    text = ("Sure! Here is a task I came up with.\n\n{'name': 'Add Small', 'description': 'Add numbers.',"
            " 'difficulty': 'level 4',}\nAnd the code:\n```py\n" + CODE + "```\nHope this helps!")
    d = parse_task(text)
    assert d.name == "add-small" and d.description == "Add numbers." and d.difficulty == 4
    assert d.capability == "general" and d.source == CODE


def test_broken_json_with_bare_keys_and_python_literals():
    text = '{name: "x", description: "Count vowels.", capability: "strings", difficulty: 9, hard: True,}\n' + CODE
    d = parse_task(text)
    assert (d.name, d.description, d.capability, d.difficulty) == ("x", "Count vowels.", "strings", 5)
    assert d.source.startswith("class TaskFamily:")


def test_key_value_lines_and_unclosed_fence_with_imports():
    text = ("**Name**: Vowel Count\nDescription: Count the vowels in a word.\nCapability: spelling\n"
            "Difficulty: 1\n\n```python\nimport re\n\n" + CODE)
    d = parse_task(text)
    assert d.name == "vowel-count" and d.description == "Count the vowels in a word." and d.difficulty == 1
    assert d.source.startswith("import re\n") and "def score" in d.source


def test_unfenced_code_after_prose_keeps_its_imports_and_helpers():
    text = ('{"description": "Sort words."}\nHere it is:\nimport random\nWORDS = ["b", "a"]\n\n'
            "def helper(x):\n    return x\n\n" + CODE + "\nThat is all.")
    d = parse_task(text)
    assert d.source.startswith("import random\nWORDS") and "def helper" in d.source


def test_braces_inside_json_strings_and_code():
    text = '{"description": "Format {x} braces", "name": "b"}\n```python\n' + CODE + "```"
    assert parse_task(text).description == "Format {x} braces"


def test_description_falls_back_to_the_docstring():
    code = CODE.replace("class TaskFamily:\n", 'class TaskFamily:\n    """Add two numbers."""\n')
    assert parse_task("```python\n" + code + "```").description == "Add two numbers."


@pytest.mark.parametrize(("text", "message"), [
    ("I cannot write that task.", "no `class TaskFamily`"),
    ("", "no `class TaskFamily`"),
    ("```python\n" + CODE + "```", "no task description"),
])
def test_nothing_usable_is_a_parse_error(text, message):
    with pytest.raises(ParseError, match=message):
        parse_task(text)


def test_done_detection():
    assert declares_done("DONE") and declares_done("The task works.\n**DONE**\n")
    assert not declares_done("I am not done yet") and not declares_done("DONE\n```python\n" + CODE + "```")
