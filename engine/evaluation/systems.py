"""``acdc-engine evaluate``: a run's task force against baselines on outside benchmarks.

Systems compared on each benchmark:

- the task force (N models, each answering greedily);
- each seed model alone (greedy);
- the control: the first seed sampled N times at temperature 0.7;
- any other checkpoint directories given (greedy; same architecture).

For a system with N answers per question: **Coverage** (some answer is
right), **majority vote** (the most frequent normalised answer, ties to the
earliest) and **best-of-N** (the answer a judge picks: the highest mean
per-token log-probability under the judge model, by default the run's base
model). With one answer all three are its accuracy.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acdc_engine.archives import select_task_force
from .outside_benchmarks import Benchmark, Item, code_of, is_correct, load_benchmark, submission
from .discovery_measure import run_skills
from ..errors import AcdcError
from ..models.lineage import rebuild_weights
from ..plugin_manager import PluginContext
from ..recipe import Recipe
from ..models.seed_resolution import check_same_architecture, resolve_seeds
from ..store import RunStore
from ..tasks import ACCEPTED

CONTROL_TEMPERATURE = 0.7


@dataclass(frozen=True)
class System:
    """Something to score: N weight files answering greedily, or one sampled N times."""

    name: str
    weights: tuple[Path, ...]
    samples: int = 1  # > 1: one model sampled this many times

    @property
    def n(self) -> int:
        return max(len(self.weights), self.samples)


def stored_task_force(store: RunStore, method: str | None, size: int, seed: int) -> list[str]:
    """The run's task force, or one re-selected by ``method`` from the final archive's
    children over every accepted task, or over each of its instances where the run's
    ``result.task_force_units`` says ``instances`` (as the run's own pick)."""
    config = store.config()
    if method is None:
        row = store.task_force()
        if row is None:
            raise AcdcError(f"run {store.run_dir} has no task force yet; finish it with `acdc-engine resume`")
        return json.loads(row["model_ids"])
    kept = [r["id"] for r in store.models() if r["status"] == "elite" and not Recipe.from_json(r["recipe"]).is_seed]
    tasks = [r["id"] for r in store.tasks() if r["status"] in ACCEPTED]
    scores = store.scores()
    _, units, unit_scores, threshold = run_skills(store, config.result.task_force_units)
    columns = [u["id"] for u in units if u["id"].split("#")[0] in set(tasks)]  # a task, or one of its instances
    solved = np.array([[unit_scores.get((m, c), 0.0) >= threshold for c in columns] for m in kept],
                      dtype=bool).reshape(len(kept), len(columns))
    fitness = np.array([np.mean([scores.get((m, t), 0.0) for t in tasks]) if tasks else 0.0 for m in kept])
    return [kept[i] for i in select_task_force(method, solved, size, fitness, seed=seed)]


def score_answers(items: list[Item], answers: list[list[str]], hook, limits) -> list[list[bool]]:
    """Whether each answer (normalised by :func:`submission`) is right; code runs in the sandbox
    (hook ``acdc_program_passes``)."""
    out = []
    for item, group in zip(items, answers):
        if item.kind == "code":
            verdicts = {}
            for a in group:
                if a not in verdicts:
                    # the prompt brings the imports; a whole function in the answer redefines its stub
                    whole = f"def {item.code['entry_point']}" in a
                    body = item.code["prompt"] + ("\n\n" if whole else "") + a
                    program = f"{body}\n\n{item.code['test']}\n\ncheck({item.code['entry_point']})\n"
                    verdicts[a] = bool(hook.acdc_program_passes(program=program, limits=limits))
            out.append([verdicts[a] for a in group])
        else:
            out.append([is_correct(item, a) for a in group])
    return out


def majority_pick(answers: list) -> int:
    """The index of the most frequent answer (ties to the earliest)."""
    return answers.index(Counter(answers).most_common(1)[0][0])


def system_scores(right: list[list[bool]], majority: list[int], picks: list[int] | None) -> dict:
    """Coverage (some answer right), majority vote and best-of-N over questions, from each question's
    verdicts per answer, the index of its majority answer and of the judge's pick (``picks`` None: no
    judge, best-of-N None)."""
    return {"coverage": float(np.mean([any(r) for r in right])),
            "majority": float(np.mean([r[i] for r, i in zip(right, majority)])),
            "best_of_n": None if picks is None else float(np.mean([r[i] for r, i in zip(right, picks)]))}


class Evaluation:
    """Answers, judges and scores every system on every benchmark."""

    def __init__(self, run_dir: Path, *, model_dirs: list[Path] = (), samples: int | None = None,
                 judge_dir: Path | None = None, method: str | None = None, max_new_tokens: int | None = None,
                 answer_backend: str | None = None, seed: int = 0, on_progress=None) -> None:
        self.store = RunStore.open(run_dir)
        self.config = self.store.config()
        if answer_backend:  # this evaluation's choice over the run's generation.answer_backend
            gen = self.config.generation.model_copy(update={"answer_backend": answer_backend})
            self.config = self.config.model_copy(update={"generation": gen})
        self.plugins = ExitStack()
        self.hook = self.plugins.enter_context(PluginContext(self.config)).hook
        seed_dirs, self.base_dir = resolve_seeds(self.hook, self.config.models)
        self.seed_dirs = seed_dirs
        self.samples = samples or self.config.result.task_force_size
        self.max_new_tokens = max_new_tokens or self.config.generation.max_new_tokens
        self.seed = seed
        self.on_progress = on_progress or (lambda text: None)
        force = stored_task_force(self.store, method, self.samples, seed)
        if not force:
            raise AcdcError(f"run {run_dir} has no archive member to form a task force from")
        self.force = force  # the task force's model ids, the first system's members in order
        self.scratch = Path(tempfile.mkdtemp(prefix="acdc-evaluate-"))
        self.systems = [System(f"task force ({', '.join(force)})", tuple(self.model_file(m) for m in force))]
        self.systems += [System(f"seed {spec}", (d / "model.safetensors",)) for spec, d in seed_dirs.items()]
        first_seed = next(iter(seed_dirs.values())) / "model.safetensors"
        self.systems.append(System(f"control ({self.samples} samples, T={CONTROL_TEMPERATURE})", (first_seed,),
                                   samples=self.samples))
        for d in model_dirs:
            d = Path(d)
            if not (d / "model.safetensors").is_file():
                raise AcdcError(f"model directory {d} has no model.safetensors")
            check_same_architecture({"base": self.base_dir, str(d): d})
            self.systems.append(System(f"model {d.name}", (d / "model.safetensors",)))
        self.judge_file = Path(judge_dir or self.base_dir) / "model.safetensors"
        self.judge_name = str(judge_dir or self.base_dir)
        self.backend = None
        self.scorer = None  # the run's own backend, where the answering one scores no likelihoods

    def model_file(self, model_id: str) -> Path:
        """The run's kept file of a model, or one rebuilt from its ancestry into a scratch folder."""
        digest = next(r["digest"] for r in self.store.models() if r["id"] == model_id)
        kept, _ = self.store.kept_file(digest)  # a damaged file is named by rebuild_weights, and rebuilt
        if kept is not None:
            return kept
        out = self.scratch / f"{model_id}.safetensors"
        rebuild_weights(self.store, model_id, hook=self.hook, base_file=self.base_dir / "model.safetensors",
                        out_file=out, seed_files={spec: d / "model.safetensors" for spec, d in self.seed_dirs.items()})
        return out

    def resident_backend(self):
        """The one backend every system answers with, made on first use."""
        if self.backend is None:
            self.backend = self.hook.acdc_make_backend(config=self.config.answering(), model_dir=self.base_dir)
            if self.backend is None:
                raise AcdcError(f"no plugin provides the backend {self.config.answering().generation.backend!r}")
        return self.backend

    def likelihood_backend(self):
        """The answering backend if it scores likelihoods (``mean_logprob``), else the run's own backend
        (``generation.backend``), made on first use."""
        backend = self.resident_backend()
        if callable(getattr(backend, "mean_logprob", None)):
            return backend
        if self.scorer is None:
            self.scorer = self.hook.acdc_make_backend(config=self.config, model_dir=self.base_dir)
        return self.scorer

    def answers(self, system: System, prompts: list[str]) -> list[list[str]]:
        """N raw responses per prompt."""
        backend = self.resident_backend()
        if system.samples > 1:
            backend.load_weights(system.weights[0])
            flat = backend.generate([p for p in prompts for _ in range(system.samples)],
                                    max_new_tokens=self.max_new_tokens, temperature=CONTROL_TEMPERATURE,
                                    seed=self.seed)
            return [flat[i * system.samples:(i + 1) * system.samples] for i in range(len(prompts))]
        columns = []
        for weights in system.weights:
            backend.load_weights(weights)
            columns.append(backend.generate(prompts, max_new_tokens=self.max_new_tokens))
        return [list(row) for row in zip(*columns)]

    def judge(self, items: list[Item], responses: list[list[str]]) -> list[int]:
        """Per question, the index of the response with the highest mean log-probability under the judge."""
        backend = self.likelihood_backend()
        backend.load_weights(self.judge_file)
        picks = []
        for item, group in zip(items, responses):
            texts = [code_of(r) if item.kind == "code" else r for r in group]
            logp = backend.mean_logprob([item.prompt] * len(texts), texts)
            picks.append(int(np.argmax(logp)))
        return picks

    def run_benchmark(self, bench: Benchmark) -> dict:
        prompts = [item.prompt for item in bench.items]
        table = {}
        for system in self.systems:
            self.on_progress(f"{bench.name}: {system.name}")
            raw = self.answers(system, prompts)
            subs = [[submission(item, r) for r in group] for item, group in zip(bench.items, raw)]
            right = score_answers(bench.items, subs, self.hook, self.config.sandbox)
            picks = self.judge(bench.items, raw) if system.n > 1 else [0] * len(raw)
            majority = [majority_pick(group) for group in subs]
            table[system.name] = {
                "n": system.n, **system_scores(right, majority, picks),
                "answers": [{"id": item.id, "responses": group, "correct": r, "judge_pick": p}
                            for item, group, r, p in zip(bench.items, raw, right, picks)],
            }
        return {"n_items": len(bench.items), "systems": table}

    def run(self, specs: list[str]) -> dict:
        benches = [load_benchmark(s) for s in specs]  # every spec is checked before any model runs
        return {"run_dir": str(self.store.run_dir), "samples": self.samples, "judge": self.judge_name,
                "control_temperature": CONTROL_TEMPERATURE,
                "benchmarks": {b.name: self.run_benchmark(b) for b in benches}}

    def publish(self, results: dict, files: list[Path]) -> None:
        """Tells the run's plugins (hook ``acdc_evaluation_results``) the evaluation's ``results`` and the
        ``files`` written: the tracking plugins log them."""
        self.hook.acdc_evaluation_results(run_dir=Path(self.store.run_dir), config=self.config, results=results,
                                          files=list(files))

    def close(self) -> None:
        for backend in (self.backend, self.scorer):
            if backend is not None:
                backend.close()
        self.plugins.close()
        self.store.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
