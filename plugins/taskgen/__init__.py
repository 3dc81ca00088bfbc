"""Procedural task generator: task families from small hand-written templates.

Initial pools cycle through every template at difficulty 1-2; ``harder``
raises a parent's difficulty (up to 5); ``novel`` switches to another
variant of the parent's template. Everything follows ``request.seed``.
"""

from __future__ import annotations

import random

from acdc_engine.api import TaskRequest, TaskSpec, hookimpl
from .families import TEMPLATES, make_instances
from .render import render_source

NAME = "taskgen"
MAX_DIFFICULTY = 5

Plan = tuple[str, str, int]  # template, variant, difficulty


def _initial_plans(n: int) -> list[Plan]:
    """Cycle through templates; each round moves to the next variant and alternates difficulty 1/2."""
    names = list(TEMPLATES)
    plans = []
    for i in range(n):
        template, round_ = names[i % len(names)], i // len(names)
        variants = list(TEMPLATES[template].variants)
        plans.append((template, variants[round_ % len(variants)], 1 + round_ % 2))
    return plans


def _novel_plans(template: str, variant: str, difficulty: int, n: int, rng: random.Random) -> list[Plan]:
    """Other variants of the same template, else variants of other templates."""
    others = [(template, v) for v in TEMPLATES[template].variants if v != variant]
    if not others:
        others = [(t, v) for t in TEMPLATES if t != template for v in TEMPLATES[t].variants]
    rng.shuffle(others)
    return [(*others[i % len(others)], difficulty) for i in range(n)]


def build_family(template: str, variant: str, difficulty: int, seed: int, count: int,
                 parent_id: str | None = None) -> TaskSpec:
    """One task family: ``count`` instances of a template variant, rendered to source."""
    chosen = TEMPLATES[template].variants[variant]
    description = f"{chosen.summary}, at difficulty {difficulty} of 5."
    return TaskSpec(
        name=f"{template}-{variant}-d{difficulty}-{seed & 0xFFFFFF:06x}",
        description=description,
        capability=TEMPLATES[template].capability,
        difficulty=difficulty,
        source=render_source(description, make_instances(template, variant, difficulty, seed, count)),
        generator=NAME,
        params={"template": template, "variant": variant, "difficulty": difficulty, "seed": seed},
        parent_id=parent_id,
    )


@hookimpl
def acdc_generate_tasks(request: TaskRequest) -> list[TaskSpec] | None:
    """Write ``request.n`` families: a fresh mix, or variants of a taskgen parent."""
    rng = random.Random(request.seed)
    if request.mode == "initial":
        plans = _initial_plans(request.n)
    else:
        if request.parent is None or request.parent.generator != NAME:
            return None
        params = request.parent.params
        template, variant, difficulty = params["template"], params["variant"], params["difficulty"]
        if request.mode == "harder":
            plans = [(template, variant, min(difficulty + 1, MAX_DIFFICULTY))] * request.n
        else:
            plans = _novel_plans(template, variant, difficulty, request.n, rng)
    return [build_family(*plan, rng.getrandbits(32), request.instances, request.parent_id) for plan in plans]


@hookimpl
def acdc_capabilities():
    return list(dict.fromkeys(t.capability for t in TEMPLATES.values()))


@hookimpl
def acdc_procedural_families(capability, difficulties, count, seed_of):
    """Every variant of ``capability``'s templates at each difficulty, in template, variant, difficulty order."""
    return [build_family(name, variant, d, seed_of(name, variant, d), count)
            for name, template in TEMPLATES.items() if template.capability == capability
            for variant in template.variants for d in difficulties]
