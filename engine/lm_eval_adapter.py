"""``acdc-engine evaluate RUN --lm-eval TASKS``: a run's systems on lm-evaluation-harness tasks.

The systems are :class:`~acdc_engine.evaluate.Evaluation`'s: the task force, each seed, the control
(the first seed sampled N times at T = 0.7) and any ``--model-dir``. Every member of a system (a
weights file answering greedily, or one sample of the control) is scored by lm-eval's
``simple_evaluate`` through :class:`AcdcLM`, the model class registered as ``acdc-engine``: one
resident backend (hook ``acdc_make_backend``) whose weights are swapped per member. Requests are
raw text, as lm-eval's own models take them: ``generate_until`` continues the context
(``Backend.complete``, cut before the task's stop strings), ``loglikelihood`` and
``loglikelihood_rolling`` score continuations (``Backend.continuation_logprobs``). Members answer
greedily; a control sample ``j`` samples its generations at T = 0.7 from a seed of its own, and
answers a multiple-choice question by a choice drawn from the choices' probabilities at T = 0.7
(:func:`~acdc_engine.discovery.choice_pick`): the drawn choice keeps its log-likelihood, the
others get ``-inf``, so lm-eval's metrics score the draw.

Answers are cached in ``<models.cache_dir>/lm-eval/answers.sqlite`` by the weights' content digest,
the decoding and the request, so a second evaluation of the same members asks the backend nothing
(and does not even load it). A question counts as solved by a member when the task's primary
per-sample metric (the first of its ``metric_list``, under its first filter) is 1; Coverage,
majority vote and best-of-N over the members come from :func:`~acdc_engine.evaluate.system_scores`.
Majority vote counts a member's answer as its filtered generation or its chosen choice; best-of-N
takes the member's answer the judge finds likeliest: the judge's log-likelihood of the generation
after the context per byte (lm-eval's ``acc_norm`` normalisation; length-normalised as
``--benchmark``'s judge is), or of the chosen choice. Every per-sample
record of lm-eval (``log_samples``) is written, one JSON line per member and question.

lm-eval is imported here only (extra ``[lm-eval]``); datasets and the hub are offline unless the
user set ``HF_DATASETS_OFFLINE`` / ``HF_HUB_OFFLINE`` otherwise.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import os
import sqlite3
import sys
import tempfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acdc_engine.digest import file_digest, text_digest
from acdc_engine.discovery import choice_pick
from acdc_engine.errors import AcdcError
from acdc_engine.evaluate import CONTROL_TEMPERATURE, Evaluation, majority_pick, system_scores

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
try:
    import lm_eval
    import lm_eval.models  # noqa: F401  lm-eval's own models first: it fills only an empty registry
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable
except ModuleNotFoundError as exc:
    raise AcdcError(f"--lm-eval needs lm-evaluation-harness ({exc.name} is missing): "
                    "pip install 'acdc-engine[lm-eval]'") from exc

MODEL_NAME = "acdc-engine"
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's own default for generate_until


class AnswerCache:
    """Backend answers to lm-eval requests, by weights digest, decoding and request, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS answers (weights TEXT NOT NULL, decoding TEXT NOT NULL, "
                          "request TEXT NOT NULL, answer TEXT NOT NULL, PRIMARY KEY (weights, decoding, request))")

    def get(self, weights: str, decoding: str, requests: list[str]) -> dict[str, object]:
        out = {}
        for i in range(0, len(requests), 500):
            chunk = requests[i:i + 500]
            rows = self.conn.execute(f"SELECT request, answer FROM answers WHERE weights=? AND decoding=? AND "
                                     f"request IN ({','.join('?' * len(chunk))})", (weights, decoding, *chunk))
            out.update((r, json.loads(a)) for r, a in rows)
        return out

    def put(self, weights: str, decoding: str, answers: dict[str, object]) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                                  [(weights, decoding, r, json.dumps(a)) for r, a in answers.items()])

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True)
class Member:
    """One answering of a system: a weights file, greedily (``sample`` None) or its ``sample``-th draw."""

    label: str
    weights: Path
    sample: int | None = None


@register_model(MODEL_NAME)
class AcdcLM(LM):
    """lm-eval's model interface served by one resident acdc-engine backend, answers cached.

    :meth:`use` chooses the member that answers next; the backend (``make_backend()``) is made and
    given the member's weights only when a request is not in the cache. ``counts`` tallies requests
    answered ``fresh`` and ``from_cache``, and ``backend_calls``.
    """

    def __init__(self, *, make_backend, cache: AnswerCache, decoding: dict, seed: int = 0) -> None:
        super().__init__()
        self.make_backend, self.cache, self.seed = make_backend, cache, seed
        self.decoding = text_digest(json.dumps(decoding, sort_keys=True))
        self.backend = None
        self.loaded: Path | None = None
        self.digests: dict[Path, str] = {}
        self.member: Member | None = None
        self.counts = {"fresh": 0, "from_cache": 0, "backend_calls": 0}

    def use(self, member: Member) -> None:
        """The member whose weights answer the following requests."""
        if member.weights not in self.digests:
            self.digests[member.weights] = file_digest(member.weights)
        self.member = member

    def sample_seed(self) -> int:
        """The seed of the current member's sample (a different stream per ``seed`` and sample)."""
        return int(np.random.SeedSequence([self.seed, self.member.sample]).generate_state(1)[0])

    def _answers(self, kind: str, requests: list, compute) -> list:
        """Answers to ``requests`` (JSON-able) from the cache, the missing ones from
        ``compute(backend, requests)``, cached at once."""
        keys = [json.dumps(r) for r in requests]
        digest = self.digests[self.member.weights]
        decoding = f"{self.decoding}:{kind}"
        asked = Counter(keys)
        known = self.cache.get(digest, decoding, list(asked))
        todo = [k for k in asked if k not in known]
        self.counts["from_cache"] += sum(asked[k] for k in known)
        if todo:
            if self.backend is None:
                self.backend = self.make_backend()
                for method in ("complete", "continuation_logprobs"):
                    if not callable(getattr(self.backend, method, None)):
                        raise AcdcError(f"the backend {type(self.backend).__name__} has no {method}(), "
                                        "needed by --lm-eval")
            if self.loaded != self.member.weights:
                self.backend.load_weights(self.member.weights)
                self.loaded = self.member.weights
            fresh = dict(zip(todo, compute(self.backend, [json.loads(k) for k in todo])))
            self.counts["fresh"] += sum(asked[k] for k in todo)
            self.counts["backend_calls"] += 1
            self.cache.put(digest, decoding, fresh)
            known.update(fresh)
        return [known[k] for k in keys]

    def scores(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """(log-likelihood, greedy) of each (context, continuation) under the current weights."""
        out = self._answers("loglikelihood", [list(p) for p in pairs],
                            lambda b, todo: [list(a) for a in b.continuation_logprobs([tuple(p) for p in todo])])
        return [(float(lp), bool(g)) for lp, g in out]

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = self.scores([r.args for r in requests])
        if self.member.sample is None:
            return out
        by_doc = defaultdict(list)  # a multiple-choice question's requests: one per choice
        for k, r in enumerate(requests):
            by_doc[(r.task_name, r.doc_id)].append(k)
        for (task, doc), ks in by_doc.items():
            if len(ks) > 1:
                rng = np.random.default_rng([self.sample_seed(), doc or 0, zlib.crc32(str(task).encode())])
                picked = ks[choice_pick([out[k][0] for k in ks], CONTROL_TEMPERATURE, rng)]
                for k in ks:
                    if k != picked:
                        out[k] = (-math.inf, False)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return [lp for lp, _ in self.scores([("", r.args[0]) for r in requests])]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        temperature, seed = (0.0, 0) if self.member.sample is None else (CONTROL_TEMPERATURE, self.sample_seed())
        asks = []
        for r in requests:
            context, kwargs = r.args
            until = kwargs.get("until") or []
            asks.append([context, int(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS)),
                         [until] if isinstance(until, str) else list(until)])

        def compute(backend, todo):
            out = [""] * len(todo)
            groups = defaultdict(list)  # one backend call per (length, stop strings)
            for k, (_, length, stop) in enumerate(todo):
                groups[(length, tuple(stop))].append(k)
            for (length, stop), ks in groups.items():
                texts = backend.complete([todo[k][0] for k in ks], max_new_tokens=length, stop=stop,
                                         temperature=temperature, seed=seed)
                for k, text in zip(ks, texts):
                    out[k] = text
            return out

        return self._answers(f"complete:T={temperature}:seed={seed}", asks, compute)


@contextlib.contextmanager
def quiet_stderr():
    """Standard error, of Python and of child processes, held aside and shown only if an error escapes:
    lm-eval's progress bars per member and task, and git's complaint outside a repository, would crowd
    the command's own progress."""
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+") as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        failed = False
        try:
            with contextlib.redirect_stderr(held):
                yield
        except BaseException:
            failed = True
            raise
        finally:
            held.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                held.seek(0)
                sys.stderr.write(held.read())


def task_manager(tasks: list[str], include: Path | None) -> TaskManager:
    """lm-eval's task index (its own tasks and those under ``include``), every task name checked."""
    if include is not None and not Path(include).is_dir():
        raise AcdcError(f"--lm-eval-include {include}: no such folder")
    manager = TaskManager(include_path=str(include) if include else None)
    for name in tasks:
        if name not in manager.all_tasks:
            near = difflib.get_close_matches(name, manager.all_tasks, n=3)
            raise AcdcError(f"unknown lm-eval task {name!r}" + (f" (did you mean {', '.join(near)}?)" if near else
                                                                 "; see `lm-eval ls tasks` or --lm-eval-include"))
    return manager


def members(ev: Evaluation) -> list[tuple[str, list[Member]]]:
    """Each system's name and members: the task force's models, a seed, the control's samples, a model dir."""
    out = []
    for k, system in enumerate(ev.systems):
        if system.samples > 1:
            group = [Member(f"sample {j}", system.weights[0], j) for j in range(system.samples)]
        else:
            labels = ev.force if k == 0 else [system.name] * len(system.weights)
            group = [Member(label, w) for label, w in zip(labels, system.weights)]
        out.append((system.name, group))
    return out


def member_answer(output_type: str, sample: dict):
    """What majority vote counts: the filtered generation, or the chosen choice (the likeliest, first of equals)."""
    resps = sample["filtered_resps"]
    if output_type == "generate_until":
        return str(resps[0]).strip()
    if output_type == "multiple_choice":
        return int(np.argmax([lp for lp, _ in resps]))
    return json.dumps(resps, default=handle_non_serializable)


def solved(sample: dict, metric: str) -> bool | None:
    """Whether the member solved the question by the primary metric (None when that metric is not 0/1)."""
    value = sample.get(metric)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.number)) and float(value) in (0.0, 1.0):
        return float(value) == 1.0
    return None


class LmEvalEvaluation:
    """lm-eval tasks (names checked at once, ``include`` a folder of task YAMLs, at most ``limit`` questions
    each); :meth:`run` scores an :class:`~acdc_engine.evaluate.Evaluation`'s systems on them."""

    def __init__(self, tasks: list[str], *, include: Path | None = None, limit: int | None = None) -> None:
        self.tasks, self.limit = list(tasks), limit
        if not self.tasks:
            raise AcdcError("--lm-eval needs at least one task name")
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
        self.manager = task_manager(self.tasks, include)
        self.ev = self.cache = self.lm = None

    def evaluate_member(self, member: Member) -> dict:
        """lm-eval's results for one member: aggregate metrics, configs and per-sample records per task."""
        self.lm.use(member)
        try:
            with quiet_stderr():
                return lm_eval.simple_evaluate(model=self.lm, tasks=self.tasks, task_manager=self.manager,
                                               limit=self.limit, log_samples=True, bootstrap_iters=1000)
        except ConnectionError as exc:  # a dataset neither cached nor reachable
            offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
            raise AcdcError(f"lm-eval tasks {','.join(self.tasks)}: {exc}" + (
                "; offline, only cached datasets load: run once with HF_DATASETS_OFFLINE=0 HF_HUB_OFFLINE=0 "
                "where the hub is reachable, or give local tasks with --lm-eval-include" if offline else "")) from exc

    def judge_picks(self, output_type: str, per_member: list[dict]) -> list[int] | None:
        """Per question, the member whose answer the judge prefers (None for output types without a judge)."""
        judge = Member("judge", self.ev.judge_file)
        self.lm.use(judge)
        if output_type == "generate_until":  # log-likelihood per byte, as lm-eval's acc_norm normalises
            rows = []
            for samples in per_member:
                replies = [(s["arguments"][0][0], str(s["resps"][0][0])) for s in samples.values()]
                scores = self.lm.scores([pair for pair in replies if pair[1]])[::-1]
                rows.append([scores.pop()[0] / len(r.encode()) if r else -math.inf for _, r in replies])
        elif output_type == "multiple_choice":
            rows = []
            for samples in per_member:
                choices = [s["arguments"][member_answer(output_type, s)] for s in samples.values()]
                rows.append([lp for lp, _ in self.lm.scores([tuple(c) for c in choices])])
        else:
            return None
        return [int(np.argmax(col)) for col in zip(*rows)]

    def run(self, ev: Evaluation, samples_file: Path) -> dict:
        """The report (``benchmarks``: per task its facts and per system its scores; ``cache``: requests
        answered fresh and from the cache), the per-sample records written to ``samples_file`` (JSONL)."""
        gen = ev.config.generation
        self.ev = ev
        self.cache = AnswerCache(Path(ev.config.models.cache_dir).expanduser() / "lm-eval" / "answers.sqlite")
        self.lm = AcdcLM(make_backend=ev.resident_backend, cache=self.cache, seed=ev.seed,
                         decoding={"backend": gen.backend, "dtype": gen.dtype})
        try:
            return self._run(samples_file)
        finally:
            self.cache.close()

    def _run(self, samples_file: Path) -> dict:
        report = {"run_dir": str(self.ev.store.run_dir), "judge": self.ev.judge_name, "limit": self.limit,
                  "control_temperature": CONTROL_TEMPERATURE, "lm_eval_version": lm_eval.__version__,
                  "samples_file": str(samples_file), "benchmarks": {}}
        samples_file.parent.mkdir(parents=True, exist_ok=True)
        with open(samples_file, "w") as log:
            for name, group in members(self.ev):
                self.ev.on_progress(f"lm-eval: {name}")
                results = [self.evaluate_member(m) for m in group]
                for task in results[0]["samples"]:  # the leaf tasks: a group's or a tag's, one by one
                    about, scores = self.score_task(task, name, group, results, log)
                    report["benchmarks"].setdefault(task, {**about, "systems": {}})["systems"][name] = scores
        report["cache"] = dict(self.lm.counts)
        return report

    def score_task(self, task: str, name: str, group: list[Member], results: list[dict], log) -> tuple[dict, dict]:
        """One system on one task: the task's facts (questions, output type, primary metric), and the system's
        scores (lm-eval's aggregates per member; Coverage, majority vote, best-of-N), its samples logged."""
        config = results[0]["configs"][task]
        output_type = config["output_type"]
        metric = config["metric_list"][0]["metric"]
        per_member = []
        for member, res in zip(group, results):
            records = res["samples"][task]
            first_filter = records[0]["filter"]
            kept = {s["doc_id"]: s for s in records if s["filter"] == first_filter}
            per_member.append(kept)
            for s in kept.values():
                line = {"system": name, "member": member.label, "weights": str(member.weights),
                        "sample": member.sample, "task": task, **s, "solved": solved(s, metric)}
                log.write(json.dumps(line, default=handle_non_serializable) + "\n")
        docs = list(per_member[0])
        verdicts = [[solved(samples[d], metric) for samples in per_member] for d in docs]
        about = {"n_items": len(docs), "output_type": output_type, "primary_metric": metric}
        entry = {"n": len(group), "members": [{"member": m.label, "sample": m.sample,
                              "metrics": {k: v for k, v in res["results"][task].items() if k not in ("alias", "name")}}
                             for m, res in zip(group, results)]}
        if any(v is None for row in verdicts for v in row):
            return about, {**entry, "coverage": None, "majority": None, "best_of_n": None}
        majority = [majority_pick([member_answer(output_type, samples[d]) for samples in per_member]) for d in docs]
        picks = self.judge_picks(output_type, per_member) if len(group) > 1 else [0] * len(docs)
        return about, {**entry, **system_scores(verdicts, majority, picks)}
