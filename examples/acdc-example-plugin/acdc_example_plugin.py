"""Example acdc-engine plugin: a letter-counting task family and a SLERP merge.

Registered under the entry-point group ``acdc_engine`` as ``example``.
"""

from __future__ import annotations

import random

import torch

from acdc_engine.api import MergeMethod, TaskSpec, hookimpl

NAME = "letter-count"
WORDS = {
    1: ["banana", "apple", "letter", "coffee", "puppy", "little", "bubble", "cherry"],
    2: ["strawberry", "mississippi", "bookkeeper", "assessment", "committee", "parallel"],
    3: ["onomatopoeia", "indivisibility", "uncopyrightable", "subdermatoglyphic", "antidisestablishment"],
}

SOURCE = '''# {description}
TASKS = {tasks!r}


class TaskFamily:
    @staticmethod
    def get_tasks():
        return {{k: dict(v) for k, v in TASKS.items()}}

    @staticmethod
    def get_instructions(t):
        what = "vowels (a, e, i, o, u)" if t["letter"] == "vowels" else "the letter " + repr(t["letter"])
        return ("How many " + what + " are in the word " + repr(t["word"]) + "? "
                "End with 'Answer: <number>'.")

    @staticmethod
    def score(t, submission):
        digits = "".join(ch for ch in submission if ch.isdigit())
        return 1.0 if digits and int(digits) == t["answer"] else 0.0
'''


def count(word: str, letter: str) -> int:
    return sum(ch in "aeiou" for ch in word) if letter == "vowels" else word.count(letter)


def family(level: int, vowels: bool, seed: int, n: int, parent_id: str | None) -> TaskSpec:
    """``n`` instances at ``level`` (1-3), counting one letter or all vowels."""
    rng = random.Random(seed)
    tasks = {}
    for i in range(n):
        word = rng.choice(WORDS[level])
        letter = "vowels" if vowels else rng.choice(sorted(set(word)))
        tasks[str(i)] = {"word": word, "letter": letter, "answer": count(word, letter)}
    what = "vowels" if vowels else "a letter"
    description = f"Count {what} in words of level {level} of 3."
    return TaskSpec(
        name=f"{NAME}-{'vowels' if vowels else 'letter'}-l{level}-{seed & 0xFFFF:04x}",
        description=description, capability="strings", difficulty=level,
        source=SOURCE.format(description=description, tasks=tasks), generator=NAME,
        params={"level": level, "vowels": vowels}, parent_id=parent_id,
    )


@hookimpl
def acdc_generate_tasks(request):
    """Initial: one letter-count family at level 1; harder: next level; novel: vowels."""
    rng = random.Random(request.seed)
    if request.mode == "initial":
        return [family(1, False, rng.getrandbits(32), request.instances, None)]
    if request.parent is None or request.parent.generator != NAME:
        return None
    level, vowels = request.parent.params["level"], request.parent.params["vowels"]
    if request.mode == "harder":
        level = min(level + 1, 3)
    else:
        vowels = not vowels
    return [family(level, vowels, rng.getrandbits(32), request.instances, request.parent_id)
            for _ in range(request.n)]


def task_slerp(name, parents, base, params, out=None):
    """Spherical interpolation of the two parents' task vectors (theta - base) at ``t``;
    linear where they are (anti)parallel or zero."""
    t = params["t"]
    a, b = (p.float() - base.float() for p in parents)
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return (base.float() + (1 - t) * a + t * b).to(parents[0].dtype)
    cos = torch.clamp((a.flatten() @ b.flatten()) / (na * nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4 or (torch.pi - omega).abs() < 1e-4:
        tau = (1 - t) * a + t * b
    else:
        tau = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return (base.float() + tau).to(parents[0].dtype)


def draw_t(n_parents, rng, config):
    return {"t": float(rng.uniform(0.3, 0.7))}


@hookimpl
def acdc_merge_methods():
    return {"task_slerp": MergeMethod("task_slerp", task_slerp, draw_t)}
