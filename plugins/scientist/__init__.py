"""Built-in plugin ``scientist`` (``--plugins scientist``): an LLM writes the task families.

The ``[llm]`` section picks the model (a local checkpoint or an
OpenAI-compatible server); ``[scientist] reflections`` bounds the rounds of
sandbox feedback. Prompts live in ``prompts/*.md``. It answers every request
mode (``initial`` = completely new, ``harder``, ``novel``) for parents of any
generator, since it reads the parent's source.
"""

from __future__ import annotations

from acdc_engine.api import TaskRequest, TaskSpec, hookimpl
from acdc_engine.plugins.llm import shared_llm
from acdc_engine.plugins.scientist.scientist import NAME, Scientist

__all__ = ["NAME", "Scientist"]

_run: dict = {}


@hookimpl
def acdc_configure(config, hook):
    _run.update(config=config, hook=hook)


@hookimpl
def acdc_generate_tasks(request: TaskRequest) -> list[TaskSpec]:
    """``request.n`` families, each from its own conversation with the scientist."""
    config, hook = _run["config"], _run["hook"]
    scientist = Scientist(llm=shared_llm(config, hook), hook=hook, limits=config.sandbox,
                          reflections=config.scientist.reflections, seed=request.seed)
    return [scientist.write(request, i) for i in range(request.n)]
