"""The forge's data: the capability's procedural task families (through taskgen's hooks), their held-out
split, and the replay prompts with the base's own answers."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from acdc_engine.api import AcdcError, Instance, TaskCodeError, TaskSpec, extract_answer
from .compare import exact_backend
from .phases import Advance, Phase, quiet

if TYPE_CHECKING:
    import torch

    from .training import ForgeRecipe

DEFAULT_CAPABILITIES = ("arithmetic", "strings", "code")
EVAL_DIFFICULTIES = (1, 2)  # those of the default initial pool
HELD_OUT_PER_FAMILY = 16  # held-out instances per variant and difficulty
REPLAY_PER_FAMILY = 6  # replayed task instances per variant at each difficulty 1-3
REPLAY_FORMAT = 3  # of the cached replay records (2: with the base's scores; 3: generated in float32)


#: General prompts whose base answers are replayed (beside the other capabilities' tasks).
GENERAL_PROMPTS = (
    "What is the capital of France?", "Name three primary colors.", "Write one sentence about the sea.",
    "What is photosynthesis?", "Give me a tip for sleeping better.", "Translate 'good morning' into Spanish.",
    "Who wrote Romeo and Juliet?", "Describe a cat in one sentence.", "Why is the sky blue?",
    "What does a computer's CPU do?", "Suggest a name for a pet goldfish.", "How many continents are there?",
    "Write a haiku about autumn.", "What are the benefits of exercise?", "Explain what a verb is.",
    "What is the opposite of 'hot'?", "Give an example of a mammal.", "What language is spoken in Brazil?",
    "How do you make a cup of tea?", "What is gravity?", "Tell me a fun fact about octopuses.",
    "What is the chemical symbol for water?", "Summarize the story of Cinderella in one sentence.",
    "What is a synonym for 'happy'?", "What should I pack for a day at the beach?", "Who painted the Mona Lisa?",
    "Write a polite opening line for an email.", "What is the main ingredient of guacamole?",
    "Explain recycling to a child.", "What does DNA stand for?", "Name a famous scientist and their discovery.",
    "What is the tallest mountain in the world?", "Give me a word that rhymes with 'light'.",
    "What is the difference between weather and climate?", "What is a noun?", "How do bees make honey?",
    "What is the largest animal on Earth?", "Why do we have seasons?", "Write a short thank-you note to a friend.",
    "What is the plural of 'mouse'?",
)



@dataclass(frozen=True)
class Example:
    """One training text: a user prompt and the reply to learn (``ended``: it stops there)."""

    prompt: str
    reply: str
    ended: bool = True



def capabilities(hook) -> list[str]:
    """Every capability of the procedural task families the plugins offer (hook ``acdc_capabilities``),
    in their order."""
    known = list(dict.fromkeys(c for caps in hook.acdc_capabilities() for c in caps or ()))
    if not known:
        raise AcdcError("no plugin offers procedural task families to forge from (enable taskgen: "
                        "--plugins merge,taskgen)")
    return known



def check_capabilities(hook, names: list[str]) -> None:
    known = capabilities(hook)
    for name in names:
        if name not in known:
            raise AcdcError(f"unknown capability {name!r}; known: {', '.join(known)}")



def parse_capabilities(hook, text: str) -> list[str]:
    """The capabilities of a comma-separated list, checked."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    check_capabilities(hook, names)
    return names



def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")



def families(hook, capability: str, difficulties: tuple[int, ...], count: int, split: str,
             seed: int = 0) -> list[TaskSpec]:
    """``count`` instances of every procedural variant of ``capability`` at each difficulty (hook
    ``acdc_procedural_families``).

    ``split`` (``train``, ``replay``, ``held-out``) salts the task seeds, so the
    splits draw different instances.
    """
    def seed_of(template: str, variant: str, difficulty: int) -> int:
        return _seed(split, seed, template, variant, difficulty)

    return [spec for specs in hook.acdc_procedural_families(capability=capability, difficulties=tuple(difficulties),
                                                            count=count, seed_of=seed_of) for spec in specs or ()]



def instances(hook, specs: list[TaskSpec], limits, advance: Advance | None = None) -> list[tuple[TaskSpec, list]]:
    """Each family with its instances, from its own code in the sandbox; ``advance`` is called after each."""
    out = []
    for spec in specs:
        try:
            out.append((spec, hook.acdc_task_instances(task=spec, limits=limits)))
        except TaskCodeError as exc:
            raise AcdcError(f"task family {spec.name}: {exc}") from None
        if advance:
            advance()
    return out


def shown_instances(hook, specs: list[TaskSpec], limits, phase: Phase, what: str) -> list[tuple[TaskSpec, list]]:
    """:func:`instances`, shown as the phase "``what`` task families" counting them (each run in the
    sandbox)."""
    with phase(f"{what} task families", len(specs)) as advance:
        return instances(hook, specs, limits, advance)



def target(data: dict, worked: bool = True) -> str:
    """The correct reply in the format the instructions ask for, after the instance's ``working`` if
    ``worked`` and it has one."""
    answer = data["answer"]
    line = "Answer: " + (", ".join(map(str, answer)) if isinstance(answer, list) else str(answer))
    return f"{data['working']}\n{line}" if worked and data.get("working") else line



def task_examples(hook, capability: str, recipe: ForgeRecipe, limits, exclude: set[str],
                  phase: Phase = quiet) -> list[Example]:
    """Training examples of ``capability``: distinct instructions, none in ``exclude`` (the held-out ones)."""
    out: dict[str, Example] = {}
    specs = families(hook, capability, recipe.difficulties, recipe.train_per_family, "train", recipe.seed)
    for _, insts in shown_instances(hook, specs, limits, phase, "training"):
        for inst in insts:
            if inst.instruction not in exclude:
                out.setdefault(inst.instruction, Example(inst.instruction, target(inst.data, recipe.worked)))
    return list(out.values())



def held_out(hook, limits, caps: list[str], phase: Phase = quiet) -> dict[str, list[tuple[TaskSpec, list]]]:
    """Held-out families of each capability with their instances (other seeds than training and replay).

    Each distinct instruction counts once: small task spaces repeat instructions
    (one of the two ``units`` time questions at difficulty 1 came 8 times in 16
    draws), and a repeat would weigh one answer several times. A family left with
    no instance of its own is dropped.
    """
    held: dict[str, list[tuple[TaskSpec, list]]] = {}
    specs = {cap: families(hook, cap, EVAL_DIFFICULTIES, HELD_OUT_PER_FAMILY, "held-out") for cap in caps}
    made = iter(shown_instances(hook, [s for cap in caps for s in specs[cap]], limits, phase, "held-out"))
    for cap in caps:
        seen: set[str] = set()
        held[cap] = []
        for spec, insts in (next(made) for _ in specs[cap]):
            distinct = []
            for inst in insts:
                if inst.instruction not in seen:
                    seen.add(inst.instruction)
                    distinct.append(inst)
            if distinct:
                held[cap].append((spec, distinct))
    return held



def instructions(held: dict[str, list[tuple[TaskSpec, list]]]) -> set[str]:
    """Every instruction of :func:`held_out`'s families."""
    return {inst.instruction for pairs in held.values() for _, insts in pairs for inst in insts}



@dataclass(frozen=True)
class ReplayPrompt:
    """A prompt whose base answer is replayed: a general one, or a task instance of ``capability``."""

    capability: str | None
    prompt: str
    task: TaskSpec | None = None
    instance: Instance | None = None



def replay_prompts(hook, limits, exclude: set[str], phase: Phase = quiet) -> list[ReplayPrompt]:
    """The general prompts, then a few instances of every capability; distinct prompts, none in
    ``exclude`` (the held-out instructions)."""
    out: dict[str, ReplayPrompt] = {p: ReplayPrompt(None, p) for p in GENERAL_PROMPTS}
    specs = [(cap, spec) for cap in capabilities(hook)
             for spec in families(hook, cap, (1, 2, 3), REPLAY_PER_FAMILY, "replay")]
    made = shown_instances(hook, [spec for _, spec in specs], limits, phase, "replay")
    for (cap, _), (spec, insts) in zip(specs, made):
        for inst in insts:
            if inst.instruction not in exclude:
                out.setdefault(inst.instruction, ReplayPrompt(cap, inst.instruction, spec, inst))
    return list(out.values())



def generate_replies(hook, config, base_dir: Path, prompts: list[ReplayPrompt], on_batch=None) -> list[str]:
    """The base's greedy replies to ``prompts`` with the run's backend (exact: :func:`exact_backend`);
    ``on_batch(n)`` counts the answers."""
    backend = exact_backend(hook, config, base_dir)
    try:
        return backend.generate([r.prompt for r in prompts], max_new_tokens=config.generation.max_new_tokens,
                                on_batch=on_batch)
    finally:
        backend.close()


def replay_records(hook, config, base_dir: Path, prompts: list[ReplayPrompt], replies: list[str],
                   phase: Phase = quiet) -> list[dict]:
    """The replay records of the base's ``replies``: ``ended``: before the token limit; ``score``: the
    family's score of a task instance's reply (None for a general prompt; the scoring is a phase)."""
    from transformers import AutoTokenizer

    limit = config.generation.max_new_tokens
    scores = _score_replies(hook, config.sandbox, prompts, replies, phase)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    return [{"capability": r.capability, "prompt": r.prompt, "reply": reply, "score": score,
             "ended": len(tokenizer(reply, add_special_tokens=False).input_ids) < limit}
            for r, reply, score in zip(prompts, replies, scores)]


def _score_replies(hook, limits, prompts: list[ReplayPrompt], replies: list[str],
                   phase: Phase = quiet) -> list[float | None]:
    """Each task instance's reply scored by its family in the sandbox (one call per family); None for
    a general prompt."""
    by_family: dict[str, list[int]] = {}
    for i, r in enumerate(prompts):
        if r.task is not None:
            by_family.setdefault(r.task.digest, []).append(i)
    scores: list[float | None] = [None] * len(prompts)
    with phase("replay: scoring its answers", len(by_family)) as advance:  # by family, in the sandbox
        for indices in by_family.values():
            found = hook.acdc_score_submissions(task=prompts[indices[0]].task,
                                                instances=[prompts[i].instance for i in indices],
                                                submissions=[extract_answer(replies[i]) for i in indices],
                                                limits=limits)
            for i, score in zip(indices, found):
                scores[i] = score or 0.0
            advance()
    return scores



def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def encode(tokenizer, ex: Example, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of the chat-formatted prompt plus reply, and labels (-100 on the prompt)."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": ex.prompt}], tokenize=False,
                                           add_generation_prompt=True)
    p = tokenizer(prompt).input_ids
    a = tokenizer(ex.reply, add_special_tokens=False).input_ids + ([tokenizer.eos_token_id] if ex.ended else [])
    return (p + a)[:max_len], ([-100] * len(p) + a)[:max_len]


def pad_batch(encoded: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    import torch

    width = max(len(ids) for ids, _ in encoded)
    ids = torch.tensor([i + [pad_id] * (width - len(i)) for i, _ in encoded])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in encoded])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in encoded])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
