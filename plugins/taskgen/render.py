"""Render a family's instances as self-contained METR-shaped task source."""

from __future__ import annotations

import inspect
import pprint

from . import scoring

_CLASS = '''

TASKS = {tasks}


class TaskFamily:
    @staticmethod
    def get_tasks() -> dict[str, dict]:
        return {{key: dict(t) for key, t in TASKS.items()}}

    @staticmethod
    def get_instructions(t: dict) -> str:
        return t["question"] + "\\n\\n" + FORMATS[t["kind"]]

    @staticmethod
    def score(t: dict, submission: str) -> float | None:
        return SCORERS[t["kind"]](t, submission)
'''


def render_source(description: str, instances: dict[str, dict]) -> str:
    """Python source: a comment, the scorers, the instances as a literal, ``TaskFamily``."""
    tasks = pprint.pformat(instances, sort_dicts=False, width=100)
    return f"# {description}\n" + inspect.getsource(scoring) + _CLASS.format(tasks=tasks)
