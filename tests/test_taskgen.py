"""The procedural task generator: planning, determinism, and the sources it writes.

Generated sources are only ever run in a separate ``python -I`` process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from acdc_engine.plugins.taskgen import acdc_generate_tasks, build_family
from acdc_engine.plugins.taskgen.families import TEMPLATES
from acdc_engine.plugins.taskgen.render import render_source
from acdc_engine.tasks import TaskRequest, TaskSpec

RUNNER = """
import json, sys
results = []
for job in json.load(sys.stdin):
    space = {}
    exec(job["source"], space)
    family = space["TaskFamily"]
    tasks = family.get_tasks()
    results.append({
        "tasks": tasks,
        "instructions": {k: family.get_instructions(t) for k, t in tasks.items()},
        "scores": [family.score(tasks[k], s) for k, s in job["submissions"]],
    })
print(json.dumps(results))
"""


def run_sources(jobs: list[dict]) -> list[dict]:
    """Run each ``{"source", "submissions": [[key, text], ...]}`` job in one isolated subprocess."""
    done = subprocess.run([sys.executable, "-I", "-c", RUNNER], input=json.dumps(jobs),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def initial(seed: int = 0, n: int = 12) -> list[TaskSpec]:
    return acdc_generate_tasks(TaskRequest(mode="initial", n=n, seed=seed, instances=3))


def variant_of(parent: TaskSpec, mode: str, seed: int = 1, n: int = 1) -> list[TaskSpec] | None:
    request = TaskRequest(mode=mode, n=n, seed=seed, instances=3, parent=parent, parent_id="parent-1")
    return acdc_generate_tasks(request)


def test_same_request_gives_identical_specs():
    assert initial(seed=3) == initial(seed=3)
    parent = initial()[0]
    for mode in ("harder", "novel"):
        assert variant_of(parent, mode, n=3) == variant_of(parent, mode, n=3)


def test_different_seeds_give_different_instances():
    first, second = initial(seed=1), initial(seed=2)
    assert [s.params["seed"] for s in first] != [s.params["seed"] for s in second]
    assert all(a.source != b.source for a, b in zip(first, second) if a.params["template"] != "knowledge")


def test_initial_pool_cycles_through_templates_at_low_difficulty():
    specs = initial(n=12)
    assert len(specs) == 12
    assert len({s.capability for s in specs}) >= 6
    assert len({s.name for s in specs}) == len({s.description for s in specs}) == 12
    assert {s.params["template"] for s in specs} == set(TEMPLATES)
    assert {s.difficulty for s in specs} == {1, 2}
    for spec in specs:
        assert spec.generator == "taskgen" and spec.parent_id is None
        assert spec.params == {"template": spec.params["template"], "variant": spec.params["variant"],
                               "difficulty": spec.difficulty, "seed": spec.params["seed"]}
        json.dumps(spec.params)


def test_harder_raises_difficulty_up_to_five():
    parent = initial()[0]
    (child,) = variant_of(parent, "harder")
    assert child.difficulty == parent.difficulty + 1
    assert child.params["template"] == parent.params["template"]
    assert child.params["variant"] == parent.params["variant"]
    assert child.parent_id == "parent-1"
    top = build_family("lists", "sort", 5, seed=9, count=3)
    assert [c.difficulty for c in variant_of(top, "harder", n=2)] == [5, 5]


def test_novel_changes_variant_keeps_capability_and_difficulty():
    for parent in initial()[:6]:
        children = variant_of(parent, "novel", n=2)
        assert len(children) == 2
        for child in children:
            assert child.params["variant"] != parent.params["variant"]
            assert child.capability == parent.capability
            assert child.difficulty == parent.difficulty


@pytest.mark.parametrize("mode", ["harder", "novel"])
def test_foreign_or_missing_parent_is_not_ours(mode):
    foreign = TaskSpec(name="x", description="x", capability="code", difficulty=1, source="", generator="llm")
    assert variant_of(foreign, mode) is None
    assert acdc_generate_tasks(TaskRequest(mode=mode, n=1, seed=0, instances=3)) is None


def _right_and_wrong(t: dict) -> tuple[str, str]:
    """A correct submission (in a chatty format) and a wrong one, from the embedded instance."""
    answer, kind = t["answer"], t["kind"]
    if kind == "number":
        return f"So the result is {answer:,}.", str(answer + 1)
    if kind == "list":
        return ", ".join(map(str, answer)), ", ".join(map(str, answer[::-1]))
    if kind == "choice":
        return f"{answer}) {t['options']['ABCD'.index(answer)]}", next(x for x in "ABCD" if x != answer)
    if kind == "recall":
        return f"It is {answer}.", next(o for o in t["options"] if o != answer)
    return f"'{answer}'", answer + "x"


def test_every_template_runs_and_scores_in_a_subprocess():
    specs = [build_family(template, variant, difficulty, seed=11, count=3)
             for template, spec in TEMPLATES.items() for variant in spec.variants for difficulty in range(1, 6)]
    loaded = run_sources([{"source": s.source, "submissions": []} for s in specs])
    jobs = []
    for spec, family in zip(specs, loaded):
        assert list(family["tasks"]) == ["1", "2", "3"], spec.name
        assert all("Answer:" in text for text in family["instructions"].values()), spec.name
        submissions = []
        for key, t in family["tasks"].items():
            right, wrong = _right_and_wrong(t)
            submissions += [[key, right], [key, wrong]]
        jobs.append({"source": spec.source, "submissions": submissions})
    for spec, result in zip(specs, run_sources(jobs)):
        assert result["scores"] == [1.0, 0.0] * 3, spec.name


CASES = [
    ({"kind": "number", "answer": 1234}, ["1234", "It is 1,234.", "**1234**"], ["123", "1234 or 5", ""]),
    ({"kind": "number", "answer": -5}, ["-5", "x = -5"], ["5"]),
    ({"kind": "number", "answer": 2.5}, ["2.5 meters"], ["25"]),
    ({"kind": "list", "answer": [1, 5, 9]}, ["[1, 5, 9]", "1,5,9."], ["9, 5, 1", "1, 5", "1, 5, 9, 9"]),
    ({"kind": "text", "answer": "tac"}, ["TAC", " 'tac'. ", "The word backwards is 'tac'.", "It is tac!"],
     ["cat", "tac cat", "t-a-c"]),
    ({"kind": "text", "answer": "Thursday"}, ["It will be Thursday."], ["Friday", "Thursday or Friday"]),
    ({"kind": "choice", "answer": "B", "options": ["Rome", "Paris", "Oslo", "Bern"]},
     ["B", "B)", "(B)", "B. Paris", "Paris", "The capital is Paris."],
     ["A", "C) Oslo", "Rome or Paris", "A) Rome B) Paris", "Berlin"]),
    ({"kind": "recall", "answer": "Carbon dioxide", "options": ["Carbon dioxide", "Oxygen", "Helium", "Neon"]},
     ["carbon dioxide", "Plants take in Carbon Dioxide."], ["Oxygen", "carbon dioxide and oxygen", "carbon"]),
]


def test_scorers_are_lenient_in_format_and_strict_in_content():
    instances, submissions, expected = {}, [], []
    for i, (instance, good, bad) in enumerate(CASES, start=1):
        instances[str(i)] = {"question": "?", **instance}
        submissions += [[str(i), s] for s in good + bad]
        expected += [1.0] * len(good) + [0.0] * len(bad)
    (result,) = run_sources([{"source": render_source("cases", instances), "submissions": submissions}])
    assert result["scores"] == expected, [s for s, got, want in zip(submissions, result["scores"], expected)
                                          if got != want]
