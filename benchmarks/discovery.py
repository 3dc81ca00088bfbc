"""Does a run discover? Its task forces against the seed experts and a control, on outside questions.

Usage: python benchmarks/discovery.py [--seeds 0,1] [--set KEY=VALUE ...] [--ablations | --variants A,B] [--out DIR]
                                      [--sdist FILE] [--questions 20] [--humaneval 40]
                                      [--choices likelihood|generated] [--dev-set screened|evals|draw|domain]
                                      [--ceiling] [--mutation-control] [--dev-set-report]

For each run seed (and, with ``--ablations``, each ablation of the paper's
Table 3 shape at the same model budget), this

1. forges the default seed experts unless they are cached (``acdc-engine forge``);
2. runs a coevolution: the default config, ``--set`` overrides, ``run.seed``
   = the run seed (a run folder under ``--out`` that already holds a task
   force is reused; one without is resumed);
3. scores, on the development set below, which no part of the run reads
   (see :mod:`acdc_engine.evaluation.discovery_measure` for the systems): for N = 3 and N = 8,
   Coverage of the task force, of the seed experts, of the control and of the
   fittest single model, and of the task force picked from the models born
   up to each generation (picked over the run's tasks, or over each of their
   instances with ``--set result.task_force_units=instances``; a finished
   run is reused whatever its ``[result]``, so a pick can be measured again);
   with ``--ceiling``, every model of the run answers too, for references
   that are not systems: the reach of all the models born up to each
   generation together (against the base sampled as many times: does the
   lineage answer more than as many draws of its base?); the oracle ceiling,
   the best N of the run's models picked by the development set's own
   answers (is a missed target the pick's, or are the answers not among the
   run's models at all?), beside the same oracle over as many samples of the
   base; and the expected Coverage of N of them drawn at random (does the
   pick on the run's tasks beat chance?); with ``--mutation-control``, the
   mutation-only control, which separates selection from perturbation: one
   mutation of the base per child the run made (the child's own mutation,
   parameters and noise seed; no crossover, no archive), each scored on the
   run's accepted tasks as the run scores, and N of them and the base picked
   as the task force is picked (is the task force's gain the archive's and
   the crossover's, or would as many perturbations of the base, picked the
   same way, give it too?);
4. writes ``discovery-CHOICES.json`` and ``discovery-CHOICES.png`` (Coverage
   over generations; CHOICES is how multiple choice was answered, see
   ``--choices``) under ``--out``, prints the table, the time of each part and
   each target as met / not met, with a 90 % paired bootstrap interval of
   its gap over questions (how far the gap could move on another draw of
   questions like these).

The development set (``--dev-set screened``, the default since 2026-12-07): the tasks that SCREEN_RULE
(``benchmarks/dev_set.py``) kept, because the base, asked as the run asks, answers 15-70 % of their
screening sample greedily: candidates are the OpenAI evals registry's text-scored tasks (open answers, and
multiple choice among 3-5 values, answered by likelihood or by the generated letter, see ``--choices``)
and HumanEval cut into 4 parts by prompt length (code with tests, in the sandbox); up to 100 questions per
task, ``SCREENED_TASKS``. ``--questions`` and ``--humaneval`` do not apply to it. ``--dev-set-report``
measures only the base on it (per task its accuracy, the control of 3, and the 90 % interval half-width
of an N = 3 gap) and runs nothing else. The sets below sat at the floor: the base covered 3-6 % of them,
so no method could show a gain there.

``--dev-set evals`` (the default before 2026-12-07): ``--questions`` open
questions of each of 15 tasks of the OpenAI evals registry, read from the
``evals==3.0.1.post1`` wheel (fetched once with ``pip download --no-deps``
into the cache; never a dependency, never installed), plus ``--humaneval``
problems of HumanEval drawn with seed 0, scored in the sandbox. EVALS_RULE:
of the registry's exact-answer tasks (class ``Match``, the reply must start
with the ideal answer; their ``samples_jsonl`` files), those with at least 20
open questions (an ideal answer of at most 3 words), a median question of at
most 600 characters, at least 95 % ASCII text and at least as many distinct
answers as half their questions (40 tasks); ``random.Random(0).sample``
drew 15 of them (``EVALS_TASKS``). The rule was written, and the list drawn,
before any model answered one of them. Questions are asked zero-shot, the
task's system and user messages one after another, and scored as the domain
set below (a one-number answer as a number, else exact match after
``Answer:``). The registry replaced BIG-bench as the default on 2026-12-06,
when the registry served only ``bigbench==0.0.1``.

``--dev-set draw``: ``--questions`` short questions (multiple choice with
2-5 options, or exact answers of at most 3 words) of each task in
``BIGBENCH_TASKS``, drawn with seed 0 from the ``bigbench==1.0.0`` sdist
(fetched once with ``pip download --no-deps`` into the cache; never a
dependency), plus ``--humaneval`` problems of HumanEval drawn with seed 0,
scored in the sandbox. ``BIGBENCH_TASKS`` was drawn once, with
``random.Random(0).sample(eligible, 15)``, from the 78 JSON tasks of the sdist
with at least 20 short questions, a median question of at most 600
characters and at least 95 % ASCII text: no task was chosen or dropped by
looking at any model's answers.

``--dev-set domain`` replaces the BIG-bench part with ``DOMAIN_TASKS``: open
questions only (exact answers of at most 3 words, no multiple choice, where N
guesses pay little), from the JSON tasks and subtasks of the sdist whose
keywords name one of the run's domains (``arithmetic``, ``mathematics``,
``algorithms``, ``computer code``) and that have at least 20 such questions, a
median question of at most 600 characters and at least 95 % ASCII text: 11
tasks; from each, ``random.Random(0)`` drew at most 2 of its eligible subtasks
(in sorted order, one task after another, sorted by name), 15 in all. The rule
was fixed, and the list drawn, before any model answered one of them. A
question whose target is one plain number is scored as the project scores
numeric answers (kind ``numeric``: the reply's last number, as GSM8K-style
evaluations do): under exact match the first five models scored (1-5 %)
were counted wrong on replies such as ``1 + 4 = 5``; that rule was set then,
before any table, and their verdicts were discarded.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIGBENCH_TASKS = (
    "chinese_remainder_theorem", "empirical_judgments", "human_organs_senses", "irony_identification",
    "logical_fallacy_detection", "mathematical_induction", "navigate", "odd_one_out", "penguins_in_a_table",
    "physical_intuition", "sentence_ambiguity", "similarities_abstraction", "simple_ethical_questions", "snarks",
    "vitaminc_fact_verification",
)
DOMAIN_TASKS = (
    "auto_debugging", "chinese_remainder_theorem", "list_functions/05_shot_baseline", "list_functions/c082",
    "matrixshapes", "modified_arithmetic/three_digit_subtraction_control",
    "modified_arithmetic/three_digit_subtraction_plus_one", "operators", "physics_questions",
    "simp_turing_concept/additional_set_1", "simp_turing_concept/witness_set", "simple_arithmetic_json",
    "unit_conversion/unit_addition_general", "unit_conversion/unit_addition_same", "word_sorting",
)
EVALS_TASKS = (  # EVALS_RULE's draw; a wheel that gives another draw is refused (see evals_tasks)
    "music-theory/triads-samples", "next-val-series/next-val-series", "ascii_wordart/ascii_wordart",
    "japanese_number_reading/japanese_number_reading", "product-ie/zeroshot/product_ie_zero_shot_samples",
    "probability_questions/probability_questions", "nepali_numerals/samples", "logical_counting/samples",
    "positive-binary-operations/samples", "forth_stack_sim/samples", "last_word_nth/samples",
    "partially_solved_crossword_clues/samples", "css-selectors/verbal", "south-african-bands/south-african-bands",
    "compare-countries-area/samples",
)
DEV_SETS = {"screened": ((), False), "draw": (BIGBENCH_TASKS, False), "domain": (DOMAIN_TASKS, True),
            "evals": (EVALS_TASKS, True)}  # screened: benchmarks/dev_set.py's SCREENED_TASKS
SDIST = "bigbench-1.0.0.tar.gz"
PIP_FOR_SDIST = "pip==23.2.1"  # a pip that still downloads it (see sdist_file)
EVALS_WHEEL = "evals-3.0.1.post1-py3-none-any.whl"
DRAW_SEED = 0
SIZES = (3, 8)
CODE_TOKENS = 192  # a HumanEval answer is a whole function
ABLATIONS = {
    "acdc": [],  # as configured: DNS with pyribs' Euclidean score over scaled skill vectors
    "static-pool": ["tasks.static_pool=true"],
    "map-elites": ["evolution.archive=map-elites-grid", "evolution.grid_cells=3"],
    "top-fitness": ["evolution.archive=top-fitness"],
    "dns-paper": ["evolution.archive=dns"],  # the AC/DC paper's competition score
    "cma-es": ["evolution.emitter=cma-es"],  # CMA-ES over the merge weights instead of random parents and weights
    "task-arithmetic": ["evolution.crossover=task_arithmetic"],  # children add their parents' task vectors
}
TARGETS = (  # (name, system, baseline, margin)
    ("task force 3 >= control 3 + 3", "task_force_3", "control_3", 0.03),
    ("task force 3 >= seed experts 3 + 3", "task_force_3", "seed_experts_3", 0.03),
    ("task force 8 >= control 8 + 2", "task_force_8", "control_8", 0.02),
    ("task force 3, last generation >= generation 0 + 2", "task_force_3", "generation_0_3", 0.02),
)


def say(text: str) -> None:
    print(text, flush=True)


def sdist_file(arg: str | None, cache: Path) -> Path:
    """The bigbench sdist: ``--sdist``, or the cached one, fetched once."""
    if arg:
        return Path(arg)
    path = cache / "bigbench" / SDIST
    if not path.is_file():
        say(f"fetching {SDIST} (360 MB, once) into {path.parent}")
        path.parent.mkdir(parents=True, exist_ok=True)
        # newer pips (26.3 seen) refuse this sdist even with --no-deps (its metadata names a file:// URL
        # dependency), so the download runs under an older pip in a throwaway environment.
        with tempfile.TemporaryDirectory() as tmp:
            pip = Path(tmp, "bin", "pip")
            steps = ([sys.executable, "-m", "venv", tmp], [pip, "install", "--quiet", PIP_FOR_SDIST],
                     [pip, "download", "--quiet", "--no-deps", "bigbench==1.0.0", "-d", str(path.parent)])
            for step in steps:
                done = subprocess.run([str(a) for a in step], capture_output=True, text=True)
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                    raise SystemExit(f"error: could not fetch bigbench==1.0.0 ({Path(step[0]).name} failed): {last}; "
                                     f"give a local copy with --sdist")
        if not path.is_file():
            raise SystemExit(f"error: could not fetch bigbench==1.0.0: pip wrote no {path}")
    return path


def evals_wheel(cache: Path) -> Path:
    """The OpenAI ``evals`` wheel (its registry's data files are inside it), fetched once into the cache."""
    path = cache / "evals" / EVALS_WHEEL
    if not path.is_file():
        say(f"fetching {EVALS_WHEEL} (46 MB, once) into {path.parent}")
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "evals==3.0.1.post1", "-d", str(path.parent)], capture_output=True, text=True)
        if done.returncode != 0 or not path.is_file():
            last = (done.stderr.strip().splitlines() or ["pip wrote no " + EVALS_WHEEL])[-1]
            raise SystemExit(f"error: could not fetch evals==3.0.1.post1: {last}")
    return path


def evals_tasks(wheel: Path, questions: int) -> dict[str, list[dict]]:
    """The tasks of ``EVALS_TASKS`` from the wheel, checked to be the draw that EVALS_RULE makes."""
    from acdc_engine.evaluation.outside_benchmarks import eligible_open_tasks, evals_wheel_tasks
    from acdc_engine.errors import AcdcError

    tasks = evals_wheel_tasks(wheel)
    eligible = eligible_open_tasks(tasks, questions)
    drawn = tuple(random.Random(DRAW_SEED).sample(eligible, min(15, len(eligible))))
    if drawn != EVALS_TASKS:
        raise AcdcError(f"evals wheel {wheel}: the rule draws {', '.join(drawn)}, not the tasks listed in "
                        "EVALS_TASKS (another wheel, or another --questions?)")
    return {name: tasks[name] for name in drawn}


def dev_set(cache: Path, sdist: str | None, name: str, questions: int, humaneval: int):
    """The development set ``name`` (of ``DEV_SETS``), every item named ``benchmark/id``."""
    from dataclasses import replace

    from acdc_engine.evaluation.outside_benchmarks import draw_questions, load_bigbench_sdist, load_humaneval

    tasks, open_only = DEV_SETS[name]
    if name == "screened":  # its own questions per task, HumanEval parts included (see benchmarks/dev_set.py)
        from dev_set import screened_set

        return screened_set(cache)
    if name == "evals":
        benches = [draw_questions(task, examples, questions, DRAW_SEED, open_only=True, numeric=True)
                   for task, examples in evals_tasks(evals_wheel(cache), questions).items()]
    else:
        benches = load_bigbench_sdist(sdist_file(sdist, cache), list(tasks), questions, DRAW_SEED,
                                      open_only=open_only, numeric=open_only)
    items = []
    for bench in benches:
        items += [replace(i, id=f"{bench.name}/{i.id}") for i in bench.items]
    code = load_humaneval(None).items
    items += sorted(random.Random(DRAW_SEED).sample(code, humaneval), key=lambda i: int(i.id.split("/")[1]))
    return items


def engine(*args: str, log: Path) -> None:
    """Runs ``acdc-engine ARGS`` in a process of its own, output to ``log``; stops on failure."""
    with open(log, "a") as out:
        done = subprocess.run([sys.executable, "-m", "acdc_engine", *args], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"error: acdc-engine {args[0]} failed ({done.returncode}): {tail[0]} (log: {log})")


def coevolve(run_dir: Path, overrides: list[str], log: Path) -> bool:
    """Runs (or resumes) the coevolution into ``run_dir``; True when it had finished before."""
    from acdc_engine.config import load_config
    from acdc_engine.store import RunStore

    if (run_dir / "run.sqlite").is_file():
        store = RunStore.open(run_dir)
        kept = store.config()
        finished = store.task_force() is not None
        store.close()
        wanted = load_config(None, overrides)
        for section in ("evolution", "tasks", "generation", "models"):
            if getattr(kept, section) != getattr(wanted, section):
                raise SystemExit(f"error: {run_dir}: its [{section}] differs from what this variant runs "
                                 f"(default config + {' '.join(overrides)}); move the folder or choose another --out")
        if finished:
            say(f"  {run_dir}: finished before, reused")
            return True
        engine("resume", str(run_dir), log=log)
        return False
    engine("run", "--run-dir", str(run_dir), *[a for o in overrides for a in ("--set", o)], log=log)
    return False


class Answerer:
    """Answers the development set with the run's backend: text with the run's answer length,
    code with ``CODE_TOKENS``; code is scored in the sandbox."""

    def __init__(self, hook, config, base_dir: Path, items) -> None:
        self.hook, self.config, self.items = hook, config, items
        answering = config.answering()
        self.backend = hook.acdc_make_backend(config=answering, model_dir=base_dir)
        precision = getattr(self.backend, "compute_type", answering.generation.dtype)
        self.decoding = f"{answering.generation.backend}/{precision}"  # part of the answer book's keys
        self.scorer = self.backend  # likelihoods: the answering backend, or the run's where it offers none
        if not callable(getattr(self.backend, "reply_logprobs", None)):
            self.scorer = hook.acdc_make_backend(config=config, model_dir=base_dir)
            precision = getattr(self.scorer, "compute_type", config.generation.dtype)
            self.decoding += f"+{config.generation.backend}/{precision}"
        self.tokens = {"code": CODE_TOKENS}
        self.seconds = dict.fromkeys(("weights", "generate", "likelihood", "sandbox"), 0.0)  # where the time went
        self.answered: set[Path] = set()  # the weights files answered with

    def _load(self, weights: Path, backend=None) -> None:
        t0 = time.monotonic()
        (backend or self.backend).load_weights(weights)
        self.seconds["weights"] += time.monotonic() - t0
        self.answered.add(Path(weights))

    def time_line(self) -> str:
        """The answering time per model, by part: weight swaps (a conversion for ctranslate2), generation,
        likelihood and sandbox scoring."""
        models = len(self.answered)
        per = {k: v / max(models, 1) for k, v in self.seconds.items()}
        return (f"answering time per model ({self.decoding}, {models} models): {sum(per.values()):.0f} s = swap "
                f"{per['weights']:.0f} + generate {per['generate']:.0f} + likelihood {per['likelihood']:.0f} + "
                f"sandbox {per['sandbox']:.0f}")

    def __call__(self, weights: Path, temperature: float, seed: int, n: int, items) -> list[list[bool]]:
        """Per item of ``items``, the verdicts of ``n`` generated answers (see :class:`AnswerBook`)."""
        from acdc_engine.evaluation.outside_benchmarks import submission
        from acdc_engine.evaluation.systems import score_answers

        self._load(weights)
        t0 = time.monotonic()
        raw: list[list[str]] = [[] for _ in items]
        for kind in ("text", "code"):
            idx = [i for i, it in enumerate(items) if (it.kind == "code") == (kind == "code")]
            if not idx:
                continue
            prompts = [items[i].prompt for i in idx for _ in range(n)]
            out = self.backend.generate(prompts, max_new_tokens=self.tokens.get(kind, self.config.generation.max_new_tokens),
                                        temperature=temperature, seed=seed)
            for j, i in enumerate(idx):
                raw[i] = out[j * n:(j + 1) * n]
        t1 = time.monotonic()
        self.seconds["generate"] += t1 - t0
        subs = [[submission(it, r) for r in group] for it, group in zip(items, raw)]
        verdicts = score_answers(items, subs, self.hook, self.config.sandbox)
        self.seconds["sandbox"] += time.monotonic() - t1
        return verdicts

    def choose(self, weights: Path, temperature: float, seed: int) -> list[bool]:
        """Each multiple-choice item answered by likelihood (see :mod:`acdc_engine.evaluation.discovery_measure`)."""
        import numpy as np

        from acdc_engine.evaluation.outside_benchmarks import choice_replies
        from acdc_engine.evaluation.discovery_measure import choice_pick

        self._load(weights, self.scorer)
        t0 = time.monotonic()
        rng = np.random.default_rng(seed)
        asked = [it for it in self.items if it.kind == "choice"]
        if callable(getattr(self.scorer, "replies_logprobs", None)):  # several questions per forward pass
            scores = self.scorer.replies_logprobs([(it.prompt, choice_replies(it)) for it in asked])
        else:
            scores = [self.scorer.reply_logprobs(it.prompt, choice_replies(it)) for it in asked]
        out = []
        for item, logprobs in zip(asked, scores):  # in the set's order, so a sampled pick draws as before
            picked = choice_pick(logprobs, temperature, rng)
            out.append(item.choices[picked] in item.answers)
        self.seconds["likelihood"] += time.monotonic() - t0
        return out

    def close(self) -> None:
        for backend in {id(b): b for b in (self.backend, self.scorer)}.values():
            backend.close()


def measure(run_dir: Path, items, cache: Path, choices: str, units: str, ceiling: bool = False,
            mutation_control: bool = False) -> dict:
    """The table of one run: Coverage of every system for each N, and per generation; task forces (the
    seed experts' too) picked over the run's tasks or their instances (``units``). With ``ceiling``, every
    model of the run answers too: the reach of the models born up to each generation together, beside as
    many samples of the base; and for each N the oracle ceiling (:func:`acdc_engine.evaluation.discovery_measure.best_cover`)
    and the expected Coverage of a random pick (:func:`acdc_engine.evaluation.discovery_measure.random_pick_coverage`). With
    ``mutation_control``, the mutation-only control too (see :func:`mutation_control_picks`)."""
    import numpy as np

    from acdc_engine.evaluation.discovery_measure import (
        AnswerBook, Member, best_cover, coverage_by_kind, covered, forces_by_generation, guessing_coverage,
        padded, pick, random_pick_coverage, run_skills, seed_ids, system_coverage,
    )
    from acdc_engine.models.lineage import rebuild_weights
    from acdc_engine.plugin_manager import PluginContext
    from acdc_engine.models.seed_resolution import resolve_seeds
    from acdc_engine.store import RunStore

    store = RunStore.open(run_dir)
    config = store.config()
    plugins = PluginContext(config).open()
    hook = plugins.hook
    seed_dirs, base_dir = resolve_seeds(hook, config.models)
    models, tasks, scores, thr = run_skills(store, units)
    rows = {m["id"]: m for m in models}
    scratch = Path(tempfile.mkdtemp(prefix="acdc-discovery-"))
    answerer = Answerer(hook, config, base_dir, items)
    book = AnswerBook(items, cache / "discovery-answers.json", answerer,
                      choose=answerer.choose if choices == "likelihood" else None, decoding=answerer.decoding)

    def weights(model_id: str) -> Path:
        kept = store.weights_path(rows[model_id]["digest"])
        if kept.is_file():
            return kept
        out = scratch / f"{model_id}.safetensors"
        if not out.is_file():
            rebuild_weights(store, model_id, hook=hook, base_file=base_dir / "model.safetensors", out_file=out)
        return out

    def greedy(ids: list[str]) -> list[Member]:
        return [Member(m, weights(m)) for m in ids]

    def cov(ids: list[str]) -> float:
        return system_coverage(book, greedy(ids))

    def timed(what: str, answer):  # one line per answering: where the time goes
        def answer_and_say(w, temperature, seed, *n):
            t0 = time.monotonic()
            out = answer(w, temperature, seed, *n)
            say(f"  {what} with {w.name[:16]} (T={temperature}, seed {seed}) in {time.monotonic() - t0:.0f} s")
            return out
        return answer_and_say

    book.answer = timed(f"generated the answers to {len(book.generated_at)} questions", book.answer)
    if book.choose is not None:
        book.choose = timed(f"chose among the replies of {len(book.choice_at)} multiple-choice questions",
                            book.choose)

    try:
        seeds = seed_ids(models)
        task_ids = [t["id"] for t in tasks]
        base_id = next(m for m in seeds if seed_spec(rows[m]) == config.models.base)
        final = store.generation(store.last_generation())
        fittest = max(final["archive"], key=lambda r: r.fitness).id
        table: dict = {"n_seeds": len(seeds), "units": units, "per_generation": {}, "members": {}, "by_kind": {},
                       "covered": {}}

        def score(key: str, members: list[Member]) -> None:
            """Coverage of system ``key``: overall, by kind of question, and per question."""
            table[key] = system_coverage(book, members)
            table["by_kind"][key] = coverage_by_kind(book, members)
            table["covered"][key] = covered(book, members).astype(int).tolist()

        for n in SIZES:
            by_gen = forces_by_generation(models, tasks, scores, thr, n)
            last = max(by_gen)
            table["members"][f"task_force_{n}"] = by_gen[last]
            score(f"task_force_{n}", greedy(by_gen[last]))
            table["per_generation"][n] = {g: cov(ids) for g, ids in by_gen.items()}
            score(f"generation_0_{n}", greedy(by_gen[0]))
            chosen = pick(seeds, task_ids, scores, thr, n)
            expert_members = padded(greedy(chosen), greedy(seeds), n)
            table["members"][f"seed_experts_{n}"] = [m.model if m.sample is None else f"{m.model}@T0.7#{m.sample}"
                                                     for m in expert_members]
            score(f"seed_experts_{n}", expert_members)
            score(f"control_{n}", [Member(base_id, weights(base_id), sample=i) for i in range(n)])
            guess = guessing_coverage(items, n)
            table[f"guessing_{n}"] = guess.pop("all")
            table["by_kind"][f"guessing_{n}"] = guess
        if ceiling:
            born = {g: [m["id"] for m in models if m["generation"] <= g and m["status"] != "rejected"]
                    for g in table["per_generation"][SIZES[0]]}
            last_born = born[max(born)]
            draws = [Member(base_id, weights(base_id), sample=i) for i in range(len(last_born))]
            table["reach"] = {g: cov(ids) for g, ids in born.items()}
            table["reach_base"] = {g: system_coverage(book, draws[:len(ids)]) for g, ids in born.items()}
            table["members"]["all_models"] = last_born
            score("all_models", greedy(last_born))  # the last reach per question, against as many base draws
            score("base_samples", draws)
            hits = np.array([book.verdicts(m) for m in greedy(last_born)], dtype=bool)
            base_hits = np.array([book.verdicts(m) for m in draws], dtype=bool)
            for n in SIZES:
                picked, exact = best_cover(hits, n)
                table["members"][f"ceiling_{n}"] = [last_born[i] for i in picked]
                table[f"ceiling_{n}_exact"] = exact
                score(f"ceiling_{n}", greedy(table["members"][f"ceiling_{n}"]))
                table[f"random_{n}"] = random_pick_coverage(hits, n)
                table[f"ceiling_base_{n}"] = float(base_hits[best_cover(base_hits, n)[0]].any(axis=0).mean())
        if mutation_control:
            picks = mutation_control_picks(run_dir, store, hook, config, base_dir, weights(base_id), base_id,
                                           [t["id"] for t in tasks], units, thr, models, scratch)
            for n, (chosen, files) in picks.items():
                table["members"][f"mutation_control_{n}"] = chosen
                score(f"mutation_control_{n}", [Member(m, f) for m, f in zip(chosen, files)])
        score("fittest", greedy([fittest]))
        table["members"]["fittest"] = [fittest]
        table["run_task_force"] = json.loads(store.task_force()["model_ids"])
        table["run_task_force_coverage"] = cov(table["run_task_force"])
        stats = store.all_stats()
        table["run_stats"] = [{k: s.get(k) for k in ("gen", "coverage", "fit_max", "children_viable",
                                                        "children_ge_parent", "children_ge_best_parent")}
                              for s in stats]
        table["answering_s"] = {"models": len(answerer.answered), **answerer.seconds}
        say("  " + answerer.time_line())
        return table
    finally:
        answerer.close()
        plugins.close()
        store.close()
        shutil.rmtree(scratch, ignore_errors=True)


def mutation_control_picks(run_dir: Path, store, hook, config, base_dir: Path, base_file: Path, base_id: str,
                           unit_ids: list[str], units: str, threshold: float, models: list[dict],
                           scratch: Path) -> dict:
    """The mutation-only control of one run, which separates selection from perturbation: one mutation of
    the base per child the run made (:func:`acdc_engine.evaluation.discovery_measure.base_mutations`), each scored on the
    run's accepted tasks as the run scores (:func:`acdc_engine.evaluation.discovery_measure.task_scores`), and for each N the
    N of them and the base picked as the task force is picked. Returns ``{N: (ids, weights files)}``. The
    task scores are kept in ``<run folder>-mutation-control.json`` as each mutant is scored (a crash loses
    none); the mutants' weights are built into ``scratch``, one at a time, and again for those picked."""
    from acdc_engine.evaluation.discovery_measure import base_mutations, pick, task_scores, unit_scores
    from acdc_engine.run.executor import MaterialiseJob, Operators, Worker
    from acdc_engine.files import write_new
    from acdc_engine.run.task_pool import TaskPool
    from acdc_engine.tasks import ACCEPTED

    recipes = base_mutations(models, base_id)
    pool = TaskPool(emit=lambda *args, **kw: None)
    pool.restore(store.tasks(), active=[])
    records = [pool[r["id"]] for r in store.tasks() if r["status"] in ACCEPTED]
    kept_file = run_dir.parent / f"{run_dir.name}-mutation-control.json"
    kept = json.loads(kept_file.read_text()) if kept_file.is_file() else {}
    tasks_key = ",".join(r.id for r in records)
    if kept.get("tasks") != tasks_key:
        kept = {"tasks": tasks_key, "scores": {}}
    worker = Worker(config=config, hook=hook, base_dir=base_dir, operators=Operators(hook, config.evolution))

    def build(model_id: str) -> Path:
        if model_id == base_id:
            return base_file
        out = scratch / f"{model_id}.safetensors"
        if not out.is_file():
            worker.materialise(MaterialiseJob(recipes[model_id], [base_file], out))
        return out

    try:
        for k, model_id in enumerate([base_id, *recipes], 1):
            if model_id not in kept["scores"]:
                t0 = time.monotonic()
                kept["scores"][model_id] = task_scores(worker, hook, config.sandbox, build(model_id), records)
                write_new(kept_file, json.dumps(kept, indent=1))  # whole or not at all
                say(f"  mutation-only control: {model_id} scored on the run's {len(records)} tasks "
                    f"({k}/{len(recipes) + 1}, {time.monotonic() - t0:.0f} s)")
            if model_id != base_id:
                (scratch / f"{model_id}.safetensors").unlink(missing_ok=True)
        scores = {key: v for m, by_task in kept["scores"].items() for key, v in unit_scores(m, by_task, units).items()}
        candidates = [base_id, *recipes]
        out = {}
        for n in SIZES:
            chosen = pick(candidates, unit_ids, scores, threshold, n)
            out[n] = (chosen, [build(m) for m in chosen])
        return out
    finally:
        worker.close()


def seed_spec(row) -> str | None:
    """The seed spec of a seed model's row."""
    from acdc_engine.recipe import Recipe

    return Recipe.from_json(row["recipe"]).seed_spec


def targets(table: dict) -> list[tuple[str, bool, float, tuple[float, float] | None]]:
    """Each target: its name, whether it is met, the gap (system - baseline) and the gap's 90 % paired
    bootstrap interval over questions (None for a table without per-question hits)."""
    from acdc_engine.evaluation.discovery_measure import gap_interval

    out = []
    for name, system, baseline, margin in TARGETS:
        gap = table[system] - table[baseline]
        hits = table.get("covered", {})
        interval = gap_interval(hits[system], hits[baseline]) if system in hits and baseline in hits else None
        out.append((name, gap >= margin - 1e-9, gap, interval))
    return out


def ceiling_targets(table: dict) -> list[tuple[str, bool, float]]:
    """The targets on the task force, met or not by the oracle ceiling in its place (none without one):
    whether any pick of the run's own models could have met them."""
    if "ceiling_3" not in table:
        return []
    out = []
    for name, system, baseline, margin in TARGETS:
        if system.startswith("task_force_") and not baseline.startswith("generation_"):
            gap = table[system.replace("task_force", "ceiling")] - table[baseline]
            out.append((name, gap >= margin - 1e-9, gap))
    return out


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reach = {label: t for label, t in results.items() if "reach_base" in t}
    panels = len(SIZES) + bool(reach)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    for ax, n in zip(axes[0], SIZES):
        for label, table in results.items():
            gens = table["per_generation"][n]
            line = ax.plot(list(map(int, gens)), list(gens.values()), marker="o", label=f"{label} task force")[0]
            ax.axhline(table[f"seed_experts_{n}"], color=line.get_color(), ls="--", lw=0.8)
            ax.axhline(table[f"control_{n}"], color=line.get_color(), ls=":", lw=0.8)
        guessing = [t[f"guessing_{n}"] for t in results.values() if f"guessing_{n}" in t]  # one development set
        if guessing:
            ax.axhline(guessing[0], color="grey", ls="-.", lw=0.8)
        ax.set_title(f"N = {n} (dashed: seed experts, dotted: control, grey: guessing)", fontsize=9)
        ax.set_xlabel("generation")
        ax.set_ylabel("Coverage on the development set")
        ax.legend(fontsize=7)
    if reach:  # --ceiling: the lineage's reach against as many samples of the base
        ax = axes[0][-1]
        for label, table in reach.items():
            line = ax.plot(list(map(int, table["reach"])), list(table["reach"].values()), marker="o", label=label)[0]
            ax.plot(list(map(int, table["reach_base"])), list(table["reach_base"].values()), color=line.get_color(),
                    ls=":", marker=".")
        ax.set_title("all models born so far (dotted: as many samples of the base)", fontsize=9)
        ax.set_xlabel("generation")
        ax.set_ylabel("Coverage on the development set")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0", help="Comma-separated run seeds (default 0).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ablations", action="store_true", help=f"Also run every other variant "
                        f"({', '.join(list(ABLATIONS)[1:])}).")
    parser.add_argument("--variants", help=f"Comma-separated variants to run instead (of {', '.join(ABLATIONS)}).")
    parser.add_argument("--out", default="runs/discovery", help="Folder for the runs and results.")
    parser.add_argument("--sdist", help=f"The bigbench sdist ({SDIST}) for --dev-set draw or domain; default: "
                        "fetched into the cache (the registry serves only bigbench 0.0.1 since 2026-12-05).")
    parser.add_argument("--questions", type=int, default=20, help="Questions per task of the development set.")
    parser.add_argument("--humaneval", type=int, default=40, help="HumanEval problems.")
    parser.add_argument("--choices", choices=("likelihood", "generated"), default="likelihood",
                        help="How a multiple-choice question is answered: the most likely reply 'Answer: <letter>' "
                        "(sampled: drawn from the replies' probabilities), as BIG-bench scores its own tasks; or "
                        "the letter in the generated reply.")
    parser.add_argument("--dev-set", choices=tuple(DEV_SETS), default="screened",
                        help="screened (the default): the tasks of the evals registry and HumanEval on which the "
                        "base scores 15-70 %% by SCREEN_RULE (benchmarks/dev_set.py; --questions and --humaneval "
                        "do not apply); evals: open questions of 15 tasks drawn from the OpenAI evals registry, "
                        "beside HumanEval; or, from a bigbench sdist, a draw from all short-question tasks (draw) "
                        "or open questions of the tasks whose keywords name the run's domains (domain). See the "
                        "docstring.")
    parser.add_argument("--time-answering", action="store_true", help="Answer the development set once with the "
                        "base (greedy, a fresh answer book) and print where the time goes; no run. It answers with "
                        "generation.answer_backend (default: the run's backend), e.g. --set "
                        "generation.answer_backend=ctranslate2.")
    parser.add_argument("--dev-set-report", action="store_true", help="Measure only the base on the screened "
                        "set: per task its question count and greedy accuracy, the control of 3, and the 90 %% "
                        "interval half-width of an N = 3 gap (benchmarks/dev_set.py); no run.")
    parser.add_argument("--ceiling", action="store_true", help="Also answer with every model of each run: the "
                        "reach of all its models together per generation beside as many samples of the base, the "
                        "best N of them picked by these questions' own answers (an oracle ceiling, not a system), "
                        "and a random N's expected Coverage.")
    parser.add_argument("--mutation-control", action="store_true", help="Also measure the mutation-only "
                        "control: as many mutations of the base as the run made children (no crossover, no "
                        "archive), scored on the run's tasks, N of them picked as the task force is.")
    args = parser.parse_args()

    from acdc_engine.ui.commands import quiet_libraries
    from acdc_engine.config import load_config
    from acdc_engine.errors import AcdcError

    quiet_libraries()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"error: --seeds {args.seeds!r}: expected comma-separated integers") from None
    if args.dev_set_report:
        import dev_set as screened

        sys.argv = [sys.argv[0], "--choices", args.choices]
        screened.main()
        return
    try:
        config = load_config(None, args.overrides)  # bad overrides fail before any work
        cache = Path(config.models.cache_dir).expanduser()
        items = dev_set(cache, args.sdist, args.dev_set, args.questions, args.humaneval)
    except AcdcError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.time_answering:
        time_answering(config, items, args.choices)
        return
    tasks = DEV_SETS[args.dev_set][0]
    source = "evals registry" if args.dev_set == "evals" else "BIG-bench"
    if args.dev_set == "screened":
        from dev_set import SCREENED_TASKS

        tasks, source = SCREENED_TASKS, "screened (evals registry and HumanEval parts)"
        args.questions, args.humaneval = 0, 0  # the set fixes its own counts
        say(f"development set screened: {len(items)} questions of {len(tasks)} tasks (benchmarks/dev_set.py)")
    else:
        say(f"development set {args.dev_set}: {len(items)} questions ({len(tasks)} {source} tasks x "
            f"{args.questions}, {args.humaneval} HumanEval)")
    times: dict = {}
    started = time.monotonic()
    engine("forge", "--no-eval", log=out / "forge.log")
    times["forge_s"] = round(time.monotonic() - started, 1)
    variants = ABLATIONS if args.ablations else {"acdc": []}
    if args.variants:
        unknown = [v for v in args.variants.split(",") if v not in ABLATIONS]
        if unknown:
            raise SystemExit(f"error: --variants {', '.join(unknown)}: unknown (known: {', '.join(ABLATIONS)})")
        variants = {v: ABLATIONS[v] for v in args.variants.split(",")}
    described = {"source": source, "tasks": list(tasks), "questions_per_task": args.questions,
                 "humaneval": args.humaneval, "draw_seed": DRAW_SEED, "choices": args.choices}
    if args.dev_set not in ("draw", "screened"):
        described["open_only"] = described["numeric"] = True
    say(f"multiple choice answered by {args.choices}")
    stem = f"discovery-{args.choices}" if args.dev_set == "draw" else f"discovery-{args.dev_set}"
    results_file, plot_file = out / f"{stem}.json", out / f"{stem}.png"
    results = earlier_results(results_file, described, args.overrides)
    for seed in seeds:
        for name, extra in variants.items():
            label = f"{name} seed {seed}"
            run_dir = out / f"{name}-s{seed}"
            say(f"{label}: coevolving into {run_dir}")
            t0 = time.monotonic()
            reused = coevolve(run_dir, [*args.overrides, *extra, f"run.seed={seed}"], out / f"{name}-s{seed}.log")
            run_s = round(time.monotonic() - t0, 1)
            earlier = results.get(label, {})  # tables of older versions, or without an asked ceiling: again
            if (reused and "covered" in earlier and (not args.ceiling or "ceiling_base_3" in earlier)
                    and (not args.mutation_control or "mutation_control_3" in earlier)):
                say(f"{label}: measured before")
                report(label, results[label])
                continue
            say(f"{label}: scoring on the development set")
            t1 = time.monotonic()
            try:
                results[label] = table = measure(run_dir, items, cache, args.choices,
                                                 config.result.task_force_units, ceiling=args.ceiling,
                                                 mutation_control=args.mutation_control)
            except AcdcError as exc:  # e.g. a run that this engine cannot read: the results so far stay
                raise SystemExit(f"error: {label}: {exc}") from None
            table["time_s"] = {"run": run_s, "answer": round(time.monotonic() - t1, 1)}
            report(label, table)
            results_file.write_text(json.dumps({  # after each run: kept on a crash
                "development_set": described, "overrides": args.overrides, "forge_s": times["forge_s"],
                "results": results}, indent=1))
            plot(results, plot_file)
    say(f"wrote {results_file} and {plot_file}; total {time.monotonic() - started:.0f} s")


def time_answering(config, items, choices: str) -> None:
    """The base answers ``items`` once, greedily, into a throw-away answer book; prints the time by part."""
    from acdc_engine.evaluation.discovery_measure import AnswerBook, Member
    from acdc_engine.plugin_manager import PluginContext
    from acdc_engine.models.seed_resolution import resolve_seeds

    with PluginContext(config) as plugins, tempfile.TemporaryDirectory() as scratch:
        _, base_dir = resolve_seeds(plugins.hook, config.models)
        t0 = time.monotonic()
        answerer = Answerer(plugins.hook, config, base_dir, items)
        started = time.monotonic() - t0
        try:
            book = AnswerBook(items, Path(scratch) / "answers.json", answerer,
                              choose=answerer.choose if choices == "likelihood" else None, decoding=answerer.decoding)
            right = book.verdicts(Member("base", base_dir / "model.safetensors"))
        finally:
            answerer.close()
    say(f"{len(items)} questions ({sum(i.kind == 'choice' for i in items)} multiple choice by {choices}); the base "
        f"answers {100 * sum(right) / len(right):.1f} %; backend start {started:.0f} s")
    say(answerer.time_line())


def earlier_results(path: Path, described: dict, overrides: list[str]) -> dict:
    """The results an earlier invocation wrote under the same folder, on the same development set and
    overrides (so ``--seeds 0`` then ``--seeds 1`` end with one table of both); else none."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if earlier.get("development_set") != described or earlier.get("overrides") != overrides:
        say(f"  {path}: another development set or other overrides; its results are replaced")
        return {}
    results = earlier.get("results", {})
    for table in results.values():  # JSON keys are strings; the tables use ints for N and generations
        table["per_generation"] = {int(n): {int(g): c for g, c in gens.items()}
                                   for n, gens in table["per_generation"].items()}
        for key in ("reach", "reach_base"):
            if key in table:
                table[key] = {int(g): c for g, c in table[key].items()}
    return results


def report(label: str, table: dict) -> None:
    import numpy as np

    from acdc_engine.evaluation.discovery_measure import gap_interval

    say(f"\n{label}  ({table['n_seeds']} seeds; run {table['time_s']['run']:.0f} s, "
        f"scoring {table['time_s']['answer']:.0f} s)")
    say(f"  {'Coverage %':<26}" + "".join(f"{'N=' + str(n):>8}" for n in SIZES))
    for name, key in (("task force", "task_force"), ("seed experts", "seed_experts"), ("control (base, T=0.7)", "control")):
        say(f"  {name:<26}" + "".join(f"{100 * table[f'{key}_{n}']:>8.1f}" for n in SIZES))
    if "mutation_control_3" in table:
        say(f"  {'mutation-only control':<26}" + "".join(f"{100 * table[f'mutation_control_{n}']:>8.1f}"
                                                        for n in SIZES))
    say(f"  {'fittest single model':<26}{100 * table['fittest']:>8.1f}")
    say(f"  {'random guessing (expected)':<26}" + "".join(f"{100 * table[f'guessing_{n}']:>8.1f}" for n in SIZES))
    kinds = sorted(table["by_kind"]["fittest"])
    say(f"  by kind of question, N=3 ({', '.join(kinds)}):")
    for name in ("task_force_3", "seed_experts_3", "control_3", "mutation_control_3", "guessing_3", "fittest"):
        if name not in table["by_kind"]:
            continue
        say(f"    {name:<24}" + "".join(f"{k[:6]:>8} {100 * table['by_kind'][name][k]:5.1f}" for k in kinds))
    for n in SIZES:
        gens = table["per_generation"][n]
        say(f"  task force {n} by generation: " + "  ".join(f"g{g} {100 * c:.1f}" for g, c in gens.items()))
    for s in table["run_stats"]:
        if s.get("children_viable") is not None:
            say(f"  gen {s['gen']}: children viable {s['children_viable']:.2f}, >= a parent "
                f"{s['children_ge_parent']:.2f}, >= the fitter parent {s['children_ge_best_parent']:.2f}; "
                f"archive coverage {s['coverage']:.3f}")
    if "reach_base" in table:
        say("  all the run's models together, by generation (the base sampled as many times): " + "  ".join(
            f"g{g} {100 * c:.1f} ({100 * table['reach_base'][g]:.1f})" for g, c in table["reach"].items()))
        models, samples = (np.array(table["covered"][k]) for k in ("all_models", "base_samples"))
        lo, hi = gap_interval(models, samples)
        say(f"  all {len(table['members']['all_models'])} models against the base sampled as many times at T=0.7: "
            f"{100 * models.mean():.1f} vs {100 * samples.mean():.1f} ({100 * (models.mean() - samples.mean()):+.1f} "
            f"points; 90 % interval over questions {100 * lo:+.1f} to {100 * hi:+.1f})")
        say("  ceiling, the best N of the run's models picked by these questions' answers (an oracle): "
            + "  ".join(f"N={n} {100 * table[f'ceiling_{n}']:.1f}"
                        + ("" if table[f"ceiling_{n}_exact"] else " (greedy)") for n in SIZES))
        if "ceiling_base_3" in table:
            say("  the same oracle over as many samples of the base: "
                + "  ".join(f"N={n} {100 * table[f'ceiling_base_{n}']:.1f}" for n in SIZES))
        say("  a random N of the run's models (expected): "
            + "  ".join(f"N={n} {100 * table[f'random_{n}']:.1f}" for n in SIZES))
    if "mutation_control_3" in table:
        for n in SIZES:
            lo, hi = gap_interval(*(np.array(table["covered"][f"{k}_{n}"]) for k in ("task_force", "mutation_control")))
            gap = table[f"task_force_{n}"] - table[f"mutation_control_{n}"]
            say(f"  task force {n} against the mutation-only control ({', '.join(table['members'][f'mutation_control_{n}'])}): "
                f"{100 * gap:+.1f} points (90 % interval over questions {100 * lo:+.1f} to {100 * hi:+.1f})")
    for name, met, gap, interval in targets(table):
        spread = "" if interval is None else (f"; 90 % interval over questions {100 * interval[0]:+.1f} to "
                                               f"{100 * interval[1]:+.1f}")
        say(f"  target {name}: {'met' if met else 'NOT met'} ({100 * gap:+.1f} points{spread})")
    for name, met, gap in ceiling_targets(table):
        say(f"  with the oracle pick in place of the task force, {name}: {'met' if met else 'NOT met'} "
            f"({100 * gap:+.1f} points)")


if __name__ == "__main__":
    main()
