"""The scientist: an LLM writes a task family, tries it in the sandbox, and revises it.

One task is one conversation. The scientist writes the family (metadata plus
METR-shaped source); then, for up to ``reflections`` rounds, the family is run
in the sandbox through the public hooks, the scientist answers a few of its
own instances (greedy, as a test taker), sees the instances, its answers, the
scores or the error, and either replies ``DONE`` or sends a revision. A task
is kept only when its code ran in the last round and the scientist declared
it done; any other outcome is returned with ``rejected`` set, so the engine
records why.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from string import Template

from acdc_engine.api import TaskCodeError, TaskRequest, TaskSpec, extract_answer
from ..llm.llm_client import ChatLLM, LLMError
from .parse import Draft, ParseError, declares_done, parse_task

NAME = "scientist"
TRIED_INSTANCES = 3  # instances the scientist answers itself in each round
CLIP = 1200  # characters of source, instructions or answers shown back


def prompt(name: str, **fields) -> str:
    """The prompt template ``prompts/<name>.md`` with ``$fields`` filled in."""
    text = resources.files(__package__).joinpath("prompts", f"{name}.md").read_text()
    return Template(text).safe_substitute(fields)


def _clip(text: str, limit: int = CLIP) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit} more characters]"


@dataclass
class Trial:
    """What one sandbox round showed: the report for the scientist, and whether the code ran."""

    report: str
    ran: bool


class Scientist:
    """Writes task families with a chat LLM, checked through the sandbox hooks."""

    def __init__(self, *, llm: ChatLLM, hook, limits, reflections: int = 3, seed: int = 0) -> None:
        self.llm, self.hook, self.limits = llm, hook, limits
        self.reflections, self.seed = reflections, seed

    def write(self, request: TaskRequest, index: int = 0) -> TaskSpec:
        """One task family for ``request``, kept or with ``rejected`` set."""
        seed = request.seed + 1000 * index
        conversation = [{"role": "system", "content": prompt("system")},
                        {"role": "user", "content": self.ask(request)}]
        try:
            reply = self.say(conversation, seed)
            try:
                draft = parse_task(reply)
            except ParseError as exc:
                return self.rejected(request, None, reply, f"unparseable: {exc}")
            trial = None
            for round_ in range(1, self.reflections + 1):
                trial = self.trial(self.spec(draft, request))
                conversation += [{"role": "assistant", "content": reply},
                                 {"role": "user", "content": prompt("reflect", round=round_, rounds=self.reflections,
                                                                    report=trial.report)}]
                reply = self.say(conversation, seed + round_)
                if declares_done(reply):
                    if trial.ran:
                        return self.spec(draft, request)
                    continue
                try:
                    draft, trial = parse_task(reply), None
                except ParseError:
                    continue  # keeps the last draft; the next round shows its result again
        except LLMError as exc:
            return self.rejected(request, None, "", f"llm error: {exc}")
        if trial is not None and not trial.ran:
            return self.rejected(request, draft, "", f"failed in sandbox after {self.reflections} reflections: "
                                                     f"{trial.report.splitlines()[0]}")
        return self.rejected(request, draft, "", f"not done after {self.reflections} reflections")

    def ask(self, request: TaskRequest) -> str:
        """The first user prompt for the request's mode."""
        inspiration = "\n".join(f"- {t.name} ({t.capability}, difficulty {t.difficulty}): {t.description}"
                                for t in request.inspiration) or "(none yet)"
        parent = request.parent
        if request.mode == "initial" or parent is None:
            return prompt("initial", instances=request.instances, inspiration=inspiration)
        return prompt(request.mode, instances=request.instances, inspiration=inspiration, parent_name=parent.name,
                      parent_description=parent.description, parent_capability=parent.capability,
                      parent_difficulty=parent.difficulty, parent_source=_clip(parent.source, 4000))

    def trial(self, spec: TaskSpec) -> Trial:
        """Runs the family in the sandbox and lets the scientist answer a few instances."""
        try:
            instances = self.hook.acdc_task_instances(task=spec, limits=self.limits)
        except TaskCodeError as exc:
            return Trial(f"ERROR: {exc}", False)
        if not instances:
            return Trial("ERROR: get_tasks() returned no instances.", False)
        tried = instances[:TRIED_INSTANCES]
        responses = self.llm.chat([[{"role": "user", "content": i.instruction}] for i in tried],
                                  temperature=0.0, seed=self.seed)
        submissions = [extract_answer(r) for r in responses]
        try:
            scores = self.hook.acdc_score_submissions(task=spec, instances=tried, submissions=submissions,
                                                      limits=self.limits)
        except TaskCodeError as exc:
            return Trial(f"ERROR: {exc}", False)
        lines = [f"The code ran: get_tasks() gave {len(instances)} instances. You answered {len(tried)} of them:"]
        for inst, response, sub, score in zip(tried, responses, submissions, scores):
            lines += ["", f"Instance {inst.key!r}: {_clip(inst.data, 300)}",
                      f"Instructions shown: {_clip(inst.instruction)}",
                      f"Your reply: {_clip(response, 600)}", f"Submission extracted: {sub!r}", f"score(): {score}"]
        return Trial("\n".join(lines), True)

    def say(self, conversation: list[dict], seed: int) -> str:
        return self.llm.chat([conversation], seed=seed)[0]

    @staticmethod
    def spec(draft: Draft, request: TaskRequest, rejected: str | None = None) -> TaskSpec:
        return TaskSpec(name=draft.name, description=draft.description, capability=draft.capability,
                        difficulty=draft.difficulty, source=draft.source, generator=NAME,
                        params={"mode": request.mode}, parent_id=request.parent_id, rejected=rejected)

    def rejected(self, request: TaskRequest, draft: Draft | None, reply: str, reason: str) -> TaskSpec:
        """A spec for the reject log (the raw reply stands in for source when nothing parsed)."""
        if draft is None:
            draft = Draft(name=f"unparsed-{request.seed & 0xFFFFFF:06x}", description=_clip(reply, 200) or "(no reply)",
                          capability="unknown", difficulty=1, source=reply)
        return self.spec(draft, request, rejected=reason)
