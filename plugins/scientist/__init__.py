"""Built-in plugin ``scientist`` (``--plugins scientist``): an LLM writes the task families.

The ``[llm]`` section picks the model (a local checkpoint or an
OpenAI-compatible server); ``[scientist] reflections`` bounds the rounds of
sandbox feedback. Prompts live in ``prompts/*.md``. It answers every request
mode (``initial`` = completely new, ``harder``, ``novel``) for parents of any
generator, since it reads the parent's source.
"""

from __future__ import annotations

from pydantic import Field

from acdc_engine.api import PluginSection, TaskRequest, TaskSpec, hookimpl
from ..llm.llm_client import LLMPlugin, LLMSection, shared_llm
from .scientist import NAME, Scientist

__all__ = ["NAME", "Scientist", "ScientistPlugin", "ScientistSection"]


class ScientistSection(PluginSection):
    """The LLM scientist task generator (plugin `scientist`)."""

    reflections: int = Field(3, ge=1, le=10, description="Most rounds of sandbox feedback and revision per task.")


class ScientistPlugin(LLMPlugin):
    """The plugin ``scientist``."""

    @hookimpl
    def acdc_config_sections(self):
        # [llm] is shared by every LLM plugin (novelty, llm-gibberish, llm-judge too); one plugin must declare it
        return {"scientist": ScientistSection, "llm": LLMSection}

    @hookimpl
    def acdc_generate_tasks(self, request: TaskRequest) -> list[TaskSpec]:
        """``request.n`` families, each from its own conversation with the scientist."""
        scientist = Scientist(llm=shared_llm(self.config, self.hook), hook=self.hook, limits=self.config.sandbox,
                              reflections=self.config.section("scientist").reflections, seed=request.seed)
        return [scientist.write(request, i) for i in range(request.n)]
