"""Task minimal criterion with limbo: a parent waits while its harder variant is judged."""

from __future__ import annotations

import sqlite3

from acdc_engine.hookspecs import hookimpl
from acdc_engine.tasks import TaskSpec
from conftest import run_in_process


def family(score: float, tag: str) -> str:
    """A family whose score() gives every submission ``score`` (so pass rates are known in advance)."""
    return (f"# {tag}\nclass TaskFamily:\n    get_tasks = staticmethod(lambda: {{'1': {{}}}})\n"
            "    get_instructions = staticmethod(lambda t: 'Say anything.')\n"
            f"    score = staticmethod(lambda t, s: {score})\n")


class Ladder:
    """easy-a's harder variant is a wall nobody passes; easy-b's is solvable. Each is asked for once."""

    def __init__(self):
        self.asked = set()

    @hookimpl
    def acdc_generate_tasks(self, request):
        if request.mode == "initial":
            return [TaskSpec("easy-a", "Say anything, a.", "x", 1, family(1.0, "a"), "ladder"),
                    TaskSpec("easy-b", "Say anything, b.", "x", 1, family(1.0, "b"), "ladder")]
        name = request.parent.name
        if request.mode != "harder" or name not in ("easy-a", "easy-b") or name in self.asked:
            return None
        self.asked.add(name)
        score, child = (0.0, "wall") if name == "easy-a" else (1.0, "medium")
        return [TaskSpec(child, f"Harder than {name}.", "x", 2, family(score, child), "ladder",
                         parent_id=request.parent_id)]


class Events:
    def __init__(self):
        self.limbo = []

    @hookimpl
    def acdc_event(self, kind, data):
        if kind == "task_limbo":
            self.limbo.append((data["task_id"], data["child_id"], data["outcome"]))


run = run_in_process


def test_too_hard_variant_gives_its_parent_back_and_a_solved_one_replaces_it(tiny_config, tmp_path):
    config = tiny_config(**{"run.plugins": ["merge"], "run.generations": 2, "tasks.initial_families": 2})
    events = Events()
    evo = run(config, tmp_path / "run", [Ladder(), events])
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    rows = {r[0]: r[1:] for r in db.execute("SELECT name, id, status, reason FROM tasks")}
    a, b, wall, medium = (rows[n][0] for n in ("easy-a", "easy-b", "wall", "medium"))
    assert events.limbo == [(a, wall, "held"), (b, medium, "held"), (a, wall, "restored"), (b, medium, "replaced")]
    assert rows["wall"][1:] == ("removed", "too hard: solved by no archive member; parent restored")
    assert rows["easy-a"][1:] == ("active", f"restored: its harder variant {wall} was solved by nobody")
    assert rows["easy-b"][1:] == ("retired", f"replaced by its harder variant {medium}")
    assert evo.pool.active == [medium, a] and evo.pool.limbo == {}
    # every archive member has a score on the restored parent, including those born while it was away
    members = evo.archive.member_ids()
    scored = {r[0] for r in db.execute("SELECT model_id FROM evaluations WHERE task_id=?", (a,))}
    assert set(members) <= scored and any(evo.population[m].generation == 2 for m in members)


def test_limbo_survives_resume(tiny_config, tmp_path):
    first = tiny_config(**{"run.plugins": ["merge"], "run.generations": 1, "tasks.initial_families": 2})
    ladder = Ladder()
    run(first, tmp_path / "run", [ladder])
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    assert sorted(r[0] for r in db.execute("SELECT status FROM tasks")) == ["active", "active", "limbo", "limbo"]
    events = Events()
    longer = tiny_config(**{"run.plugins": ["merge"], "run.generations": 2, "tasks.initial_families": 2})
    evo = run(longer, tmp_path / "run", [ladder, events], resume=True)
    assert [e[2] for e in events.limbo] == ["restored", "replaced"] and len(evo.pool.active) == 2
