"""Discovery measured outside the run: task forces against seed experts and a control.

A run's models are scored on questions that no part of the run reads (an
outside development set). What is compared, for a task-force size ``N``:

- the task force picked greedily, on the run's own accepted tasks, from every
  model born up to generation ``g`` (the seeds included; rejected models
  excluded), for every ``g``: its last value is *the* task force;
- the seed experts: the ``N`` seeds picked the same way from the seeds alone;
  with fewer than ``N`` seeds, padded by samples of the seeds at
  ``T = 0.7`` (round robin);
- the control: the base model sampled ``N`` times at ``T = 0.7``;
- the fittest single model of the final archive (greedy);
- the mutation-only control, which separates selection from perturbation:
  one mutation of the base for each child the run made (the child's own
  mutation, parameters and noise seed; no crossover, no archive), scored on
  the run's accepted tasks as the run scores its models, and ``N`` of them
  and the base picked the way the task force is picked
  (:func:`base_mutations`, :func:`task_scores`);
- as a reference, uniform random guessing (``N`` guesses per multiple-choice
  question), since a sampled model's ``N`` answers partly are guesses.

Coverage is also reported per kind of question (multiple choice, open
answer, code), so that a gain made by guessing is told from one made by
answering.

Every member answers each question once; Coverage is the share of
questions that some member answers right. A multiple-choice question is
answered either by the generated reply (its letter, as the prompt asks) or,
as BIG-bench scores its own multiple-choice tasks, by likelihood: the reply
``Answer: <letter>`` the model finds most probable (greedy), or one drawn
from the replies' probabilities at ``T = 0.7`` (a sample), so that a model
that knows the answer but words it badly is not counted as wrong, and one
that does not follow the format does not guess for free.
:class:`AnswerBook` holds the per-question verdicts of each answering (a
weights file greedily, or one sample of it), cached on disk by the file's
digest, so systems that share a member, and runs that share seeds, answer
once.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..answers import extract_answer
from acdc_engine.archives import greedy_task_force
from acdc_engine.archives.task_force import EXACT_LIMIT, exact_task_force
from .outside_benchmarks import Item
from ..digest import file_digest, text_digest
from ..run.executor import GenerateJob
from ..recipe import Recipe
from ..tasks import ACCEPTED, TaskCodeError, checked_scores

SAMPLE_TEMPERATURE = 0.7


@dataclass(frozen=True)
class Member:
    """One answering: a model's weights, greedily (``sample`` None) or its ``sample``-th draw at T = 0.7."""

    model: str  # a model id of the run, or a seed's label
    weights: Path
    sample: int | None = None


def run_skills(store, units: str = "tasks") -> tuple[list[dict], list[dict], dict[tuple[str, str], float], float]:
    """The run's models and accepted tasks (rows as dicts), its scores and its pass threshold. With ``units``
    ``instances``, each instance of an accepted task stands as a task of its own (id ``TASK#k``, born with
    its task), scored by that instance's score: what ``result.task_force_units = "instances"`` picks over."""

    config = store.config()
    models = [dict(r) for r in store.models()]
    tasks = [dict(r) for r in store.tasks() if r["status"] in ACCEPTED]
    if units == "tasks":
        return models, tasks, store.scores(), config.tasks.pass_threshold
    rows = [{"id": f"{t['id']}#{k}", "generation": t["generation"]}
            for t in tasks for k in range(len(json.loads(t["instances"])))]
    scores = {(m, f"{t}#{k}"): v for (m, t), values in store.instance_scores().items() for k, v in enumerate(values)}
    return models, rows, scores, config.tasks.pass_threshold


def pick(candidates: list[str], tasks: list[str], scores: dict, threshold: float, size: int) -> list[str]:
    """``size`` candidates picked greedily for Coverage of ``tasks`` (a missing score is a fail), ties
    broken as :func:`~acdc_engine.archives.greedy_task_force` does, by per-task scores then mean score."""
    matrix = np.array([[scores.get((m, t), 0.0) for t in tasks] for m in candidates],
                      dtype=float).reshape(len(candidates), len(tasks))
    fitness = matrix.mean(axis=1) if tasks else np.zeros(len(candidates))
    return [candidates[i] for i in greedy_task_force(matrix >= threshold, size, fitness, matrix)]


def forces_by_generation(models: list[dict], tasks: list[dict], scores: dict, threshold: float,
                         size: int) -> dict[int, list[str]]:
    """Per generation ``g``, the task force picked from the models born up to ``g`` (not rejected) on the
    tasks accepted up to ``g``."""
    last = max(m["generation"] for m in models)
    out = {}
    for g in range(last + 1):
        born = [m["id"] for m in models if m["generation"] <= g and m["status"] != "rejected"]
        known = [t["id"] for t in tasks if t["generation"] <= g]
        out[g] = pick(born, known, scores, threshold, size)
    return out


def seed_ids(models: list[dict]) -> list[str]:
    """The run's seed models, in order."""
    return [m["id"] for m in models if Recipe.from_json(m["recipe"]).is_seed]


def base_mutations(models: list[dict], base_id: str) -> dict[str, Recipe]:
    """The mutation-only control's genomes, by id ``mut-<child>``: for every child the run made (each
    model that is not a seed, rejected ones too), a mutation of the base alone, with the child's own
    mutation method, parameters and noise seed, and no crossover."""
    out = {}
    for row in models:
        recipe = Recipe.from_json(row["recipe"])
        if not recipe.is_seed:
            out[f"mut-{row['id']}"] = Recipe.make(parents=(base_id,), mutation=recipe.mutation,
                                                  mutation_params=dict(recipe.mutation_params), seed=recipe.seed)
    return out


def task_scores(worker, hook, limits, weights: Path, tasks: list) -> dict[str, list[float]]:
    """Per task of ``tasks`` (the run's task records, :class:`~acdc_engine.run.task_pool.TaskRecord`), the score of
    each instance answered by ``weights``, as the run answers and scores: the run's :class:`Worker`
    generates, each task's own ``score()`` scores in the sandbox under ``limits``. A task whose ``score()``
    fails scores 0, as the run then counts it for no one."""
    prompts = [inst.instruction for task in tasks for inst in task.instances]
    texts, _ = worker.generate(GenerateJob(Path(weights), prompts))
    out, at = {}, 0
    for task in tasks:
        n = len(task.instances)
        subs = [extract_answer(t) for t in texts[at:at + n]]
        at += n
        try:
            out[task.id] = checked_scores(hook.acdc_score_submissions(
                task=task.spec, instances=task.instances, submissions=subs, limits=limits), n)
        except TaskCodeError:
            out[task.id] = [0.0] * n
    return out


def unit_scores(model_id: str, by_task: dict[str, list[float]], units: str) -> dict[tuple[str, str], float]:
    """:func:`task_scores` keyed as :func:`run_skills` keys the run's scores (per task, or per instance
    ``TASK#k`` with ``units`` ``instances``), so :func:`pick` reads both alike."""
    if units == "tasks":
        return {(model_id, t): float(np.mean(v)) for t, v in by_task.items()}
    return {(model_id, f"{t}#{k}"): x for t, v in by_task.items() for k, x in enumerate(v)}


def padded(members: list[Member], seeds: list[Member], size: int) -> list[Member]:
    """``members`` padded to ``size`` by samples of ``seeds`` (round robin, first sample 0)."""
    out = list(members[:size])
    i = 0
    while len(out) < size:
        s = seeds[i % len(seeds)]
        out.append(Member(s.model, s.weights, sample=i // len(seeds)))
        i += 1
    return out


def covered(book: "AnswerBook", members: list[Member]) -> np.ndarray:
    """Per question, whether some member answers it right."""
    if not members:
        return np.zeros(len(book.items), dtype=bool)
    return np.array([book.verdicts(m) for m in members], dtype=bool).any(axis=0)


def system_coverage(book: "AnswerBook", members: list[Member]) -> float:
    """Share of questions that some member answers right."""
    return float(covered(book, members).mean()) if book.items else 0.0


def gap_interval(a: np.ndarray, b: np.ndarray, *, level: float = 0.9, draws: int = 4000,
                 seed: int = 0) -> tuple[float, float]:
    """A paired bootstrap interval of Coverage(``a``) - Coverage(``b``) over questions (``a``, ``b``: per
    question, whether each system covers it): the questions drawn again with replacement ``draws`` times
    (seeded), and the central ``level`` share of the differences. How far the figure could move on
    another draw of questions of the same kind, which a run seed alone does not show."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(draws, diff.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def best_cover(hits: np.ndarray, size: int, *, max_sets: int = EXACT_LIMIT) -> tuple[list[int], bool]:
    """The ``size`` rows of ``hits`` (members x questions, whether each member answers each question right)
    whose union covers the most questions, and whether that is exact: every subset is tried
    (:func:`~acdc_engine.archives.task_force.exact_task_force`) when there are at most ``max_sets`` of them
    (and at most its limit), else rows are added greedily (:func:`~acdc_engine.archives.greedy_task_force`,
    at least 63 % of the best); ties go to the first in order. With the outside questions as ``hits`` this is an oracle, not a system: how far a
    pick of the run's own models could go, so that a missed target can be told apart as the pick's or the
    models'."""
    if len(hits) == 0:
        return [], True
    hits = np.asarray(hits, dtype=bool).reshape(len(hits), -1)
    if math.comb(len(hits), min(size, len(hits))) <= min(max_sets, EXACT_LIMIT):
        return exact_task_force(hits, size), True
    return greedy_task_force(hits, size), False


def random_pick_coverage(hits: np.ndarray, size: int) -> float:
    """Expected Coverage of ``size`` members (rows of ``hits``) drawn at random without replacement: per
    question, ``1 - C(M - c, N) / C(M, N)`` where ``c`` of the ``M`` members answer it. Beside a pick, it
    tells whether what the pick looks at says anything about these questions."""
    hits = np.asarray(hits, dtype=bool)
    if hits.size == 0:
        return 0.0
    m, size = len(hits), min(size, len(hits))
    return float(np.mean([1 - math.comb(m - int(c), size) / math.comb(m, size) for c in hits.sum(axis=0)]))


def question_kind(item: Item) -> str:
    """``choice`` (multiple choice), ``code`` (a program to pass tests) or ``open`` (an exact or numeric
    answer): the groups that Coverage is also reported by."""
    return item.kind if item.kind in ("choice", "code") else "open"


def coverage_by_kind(book: "AnswerBook", members: list[Member]) -> dict[str, float]:
    """Coverage of each :func:`question_kind` group."""
    hit = covered(book, members)
    kinds = np.array([question_kind(i) for i in book.items])
    return {k: float(hit[kinds == k].mean()) for k in sorted(set(kinds))}


def guessing_coverage(items: list[Item], n: int) -> dict[str, float]:
    """Expected Coverage of ``n`` uniform random guesses per multiple-choice question (none right
    elsewhere), overall and by :func:`question_kind`: what answering without reading the question gets."""
    hit = np.array([1 - (1 - 1 / len(i.choices)) ** n if i.kind == "choice" and i.choices else 0.0
                    for i in items])
    kinds = np.array([question_kind(i) for i in items])
    return {"all": float(hit.mean()), **{k: float(hit[kinds == k].mean()) for k in sorted(set(kinds))}}


def choice_pick(logprobs: list[float], temperature: float, rng: np.random.Generator) -> int:
    """The index of the reply a member gives by likelihood: the most probable at ``temperature`` 0 (the
    first of equals), else one drawn from ``softmax(logprobs / temperature)``."""
    scores = np.asarray(logprobs, dtype=float)
    if temperature <= 0:
        return int(scores.argmax())
    p = np.exp((scores - scores.max()) / temperature)
    return int(rng.choice(len(p), p=p / p.sum()))


class AnswerBook:
    """Per-question verdicts of each member on a fixed question set, cached in a JSON file."""

    def __init__(self, items: list[Item], cache_file: Path, answer, choose=None, decoding: str = "") -> None:
        """``answer(weights, temperature, seed, n_samples, items) -> list[list[bool]]``: per item of
        ``items``, the verdict of each of ``n_samples`` answers (one greedy answer when ``temperature`` is 0).
        ``choose(weights, temperature, seed) -> list[bool]``, when given, answers the multiple-choice items
        by likelihood (a verdict per such item, in order); they are then not generated at all, and
        ``answer`` is asked only for the other items. Each part is cached under a key of its own, which
        holds ``decoding`` (what answers: the backend and its precision)."""
        self.items, self.cache_file, self.answer, self.choose = items, Path(cache_file), answer, choose
        self.choice_at = [k for k, i in enumerate(items) if i.kind == "choice"]
        self.generated_at = [k for k, i in enumerate(items) if choose is None or i.kind != "choice"]
        tag = [decoding] if decoding else []  # no tag: the keys of the answers cached before tags
        self.key = text_digest(json.dumps([*tag, *[(items[k].id, items[k].prompt, items[k].answers, items[k].kind)
                                                   for k in self.generated_at]]))
        self.choice_key = text_digest(json.dumps(["likelihood", *tag, *[(items[k].id, items[k].prompt, items[k].answers)
                                                                        for k in self.choice_at]]))
        self.cache = json.loads(self.cache_file.read_text()) if self.cache_file.is_file() else {}
        self.digests: dict[Path, str] = {}

    def _digest(self, weights: Path) -> str:
        if weights not in self.digests:
            self.digests[weights] = file_digest(weights)
        return self.digests[weights]

    def verdicts(self, member: Member) -> list[bool]:
        """The member's verdict per question (sample ``j`` is drawn with seed ``j``)."""
        kind = "greedy" if member.sample is None else f"sample{member.sample}"
        temperature, seed = (0.0, 0) if member.sample is None else (SAMPLE_TEMPERATURE, member.sample)
        verdicts: list[bool] = [False] * len(self.items)
        if self.generated_at:
            key = f"{self.key}:{self._digest(member.weights)}:{kind}"
            if key not in self.cache:
                asked = [self.items[k] for k in self.generated_at]
                self.cache[key] = [v[0] for v in self.answer(member.weights, temperature, seed, 1, asked)]
                self._save()
            for k, v in zip(self.generated_at, self.cache[key]):
                verdicts[k] = v
        if self.choose is not None and self.choice_at:
            key = f"{self.choice_key}:{self._digest(member.weights)}:{kind}"
            if key not in self.cache:
                self.cache[key] = list(self.choose(member.weights, temperature, seed))
                self._save()
            for k, v in zip(self.choice_at, self.cache[key]):
                verdicts[k] = v
        return verdicts

    def _save(self) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache))
        os.replace(tmp, self.cache_file)
