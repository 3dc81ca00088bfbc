"""``acdc-engine evaluate RUN --lm-eval TASKS``: a run's systems on lm-evaluation-harness tasks.

The systems are :class:`~acdc_engine.evaluation.systems.Evaluation`'s: the task force, each seed, the control
(the first seed sampled N times at T = 0.7) and any ``--model-dir``. Every member of a system (a
weights file answering greedily, or one sample of the control) is scored by lm-eval's
``simple_evaluate`` through :class:`AcdcLM`, the model class registered as ``acdc-engine``: one
resident backend (hook ``acdc_make_backend``; the run's ``generation.backend``, which scores likelihoods,
not ``generation.answer_backend``) whose weights are swapped per member. Requests are
raw text, as lm-eval's own models take them: ``generate_until`` continues the context
(``Backend.complete``, cut before the task's stop strings), ``loglikelihood`` and
``loglikelihood_rolling`` score continuations (``Backend.continuation_logprobs``). lm-eval's own
settings pass through to ``simple_evaluate``: ``--num-fewshot``, ``--apply-chat-template`` (the base
tokenizer's chat template, :meth:`AcdcLM.apply_chat_template`), ``--system-instruction`` and
``--gen-kwargs`` (over the tasks' ``generation_kwargs``; :func:`decoding_temperature` says which the
backends honour). Members answer greedily unless the generation kwargs sample (then from ``--seed``);
a control sample ``j`` samples its generations at T = 0.7 from a seed of its own, and
answers a multiple-choice question by a choice drawn from the choices' probabilities at T = 0.7
(:func:`~acdc_engine.evaluation.discovery_measure.choice_pick`): the drawn choice keeps its log-likelihood, the
others get ``-inf``, so lm-eval's metrics score the draw.

Answers are cached in ``<models.cache_dir>/lm-eval/answers.sqlite`` by the weights' content digest,
the decoding and the request, so a second evaluation of the same members asks the backend nothing
(and does not even load it). A question counts as solved by a member when the task's primary
per-sample metric (the first of its ``metric_list``, under its first filter) is 1; Coverage,
majority vote and best-of-N over the members come from :func:`~acdc_engine.evaluation.systems.system_scores`.
Majority vote counts a member's answer as its filtered generation or its chosen choice; best-of-N
takes the member's answer the judge finds likeliest: the judge's log-likelihood of the generation
after the context per byte (lm-eval's ``acc_norm`` normalisation; length-normalised as
``--benchmark``'s judge is), or of the chosen choice. Every per-sample
record of lm-eval (``log_samples``) is written, one JSON line per member and question, and each
member's results as lm-eval's CLI writes them (its ``EvaluationTracker``: ``results_DATE.json`` in its
results format, ``samples_TASK_DATE.jsonl``), one folder per member under ``--output-path``.

Outside ``evaluate``, lm-eval makes :class:`AcdcLM` itself from ``model_args``
(``pretrained=DIR`` or ``run=RUN_DIR,model=ID``, :func:`open_model`) once this module is imported:
``acdc-lm-eval`` (:mod:`acdc_engine.evaluation.lm_eval_cli`) is lm-eval's own CLI with it registered.

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
import shutil
import sqlite3
import sys
import tempfile
import weakref
import zlib
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..digest import file_digest, text_digest
from .discovery_measure import choice_pick
from ..errors import AcdcError
from .systems import CONTROL_TEMPERATURE, Evaluation, majority_pick, system_scores

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
try:
    import lm_eval
    import lm_eval.models  # noqa: F401  lm-eval's own models first: it fills only an empty registry
    from lm_eval.api.model import LM
    from lm_eval._cli.utils import key_val_to_dict, try_parse_json
    from lm_eval.api.registry import register_model
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable, sanitize_model_name
except ModuleNotFoundError as exc:
    raise AcdcError(f"--lm-eval needs lm-evaluation-harness ({exc.name} is missing): "
                    "pip install 'acdc-engine[lm-eval]'") from exc

MODEL_NAME = "acdc-engine"
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's own default for generate_until
#: The generation settings the backend honours (``Backend.complete``: length, stop strings, temperature).
GEN_KWARGS = ("until", "max_gen_toks", "temperature", "do_sample")
#: Sampling filters the backend lacks: harmless under greedy decoding (tasks' YAML often names them), refused
#: when sampling.
SAMPLING_ONLY = ("top_p", "top_k", "min_p")
SAMPLING_IDENTITY = {"top_p": (None, 1, 1.0), "top_k": (None, 0, -1), "min_p": (None, 0, 0.0)}


def parse_gen_kwargs(texts) -> dict:
    """``--gen-kwargs`` as lm-eval's ``--gen_kwargs`` reads it: a JSON object or ``key=value,...`` (values as
    Python literals, commas inside brackets or quotes kept), later ones over earlier ones; checked at once."""
    out: dict = {}
    for text in texts:
        try:
            value = try_parse_json(text)
            out.update(value if isinstance(value, dict) else key_val_to_dict(value))
        except ValueError as exc:
            raise AcdcError(f"--gen-kwargs {text!r}: {exc}") from None
    decoding_temperature(out, what="--gen-kwargs")
    return out


def decoding_temperature(kwargs: dict, what: str = "generation_kwargs") -> float:
    """The temperature that a request's generation kwargs ask for: 0 (greedy) unless ``temperature`` > 0 and
    ``do_sample`` is not false, or ``do_sample`` is true (temperature 1 unless given). Keys the backend cannot
    honour are one line naming them."""
    unknown = sorted(set(kwargs) - set(GEN_KWARGS) - set(SAMPLING_ONLY))
    if unknown:
        raise AcdcError(f"{what} {', '.join(unknown)}: not supported by acdc-engine's backends "
                        f"(they take {', '.join(GEN_KWARGS)})")
    try:
        temperature = float(kwargs.get("temperature") or 0.0)
    except (TypeError, ValueError):
        raise AcdcError(f"{what} temperature={kwargs['temperature']!r}: not a number") from None
    do_sample = kwargs.get("do_sample")
    if do_sample is True and "temperature" not in kwargs:
        temperature = 1.0
    if do_sample is False or temperature < 0:
        temperature = 0.0
    if temperature > 0 and (filters := sorted(k for k in SAMPLING_ONLY if k in kwargs
                                              and kwargs[k] not in SAMPLING_IDENTITY[k])):
        raise AcdcError(f"{what} {', '.join(filters)}: acdc-engine's backends sample from the whole "
                        "distribution (temperature only)")
    return temperature


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
    """One answering of a system: a weights file, greedily (``sample`` None) or its ``sample``-th draw; ``name``
    names its lm-eval results folder, ``args`` are the ``--model_args`` with which ``lm-eval run --model
    acdc-engine`` answers as it does."""

    label: str
    weights: Path
    sample: int | None = None
    name: str = ""
    args: str = ""


def model_overrides(config, *, backend=None, dtype=None, batch_size=None):
    """``config`` with the generation settings given as model_args (``backend``, ``dtype``, ``batch_size``:
    a number, or ``auto``)."""
    update = {}
    if backend is not None:
        update["backend"] = str(backend)
    if dtype is not None:
        update["dtype"] = str(dtype)
    if batch_size is not None:
        update["batch_size"] = 0 if str(batch_size).startswith("auto") else batch_size
    if not update:
        return config
    from pydantic import ValidationError

    try:
        generation = type(config.generation).model_validate({**config.generation.model_dump(), **update})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise AcdcError(f"model_args {err['loc'][0]}={err['input']!r}: {err['msg']}") from None
    return config.model_copy(update={"generation": generation})


def open_model(stack: ExitStack, *, pretrained=None, run=None, model=None, **overrides):
    """What ``AcdcLM`` needs to serve one model named by lm-eval model_args: ``(config, make_backend, weights
    file, tokenizer folder)``. ``pretrained=DIR``: a checkpoint folder (a seed, an ``acdc-engine export``,
    any Hugging Face folder with ``model.safetensors``), under the default config; ``run=RUN_DIR,model=ID``: a
    model of a run (its kept file, or one rebuilt from its ancestry), under the run's config. ``stack``
    closes what was opened."""
    from ..config import load_config
    from ..models.lineage import rebuild_weights
    from ..plugin_manager import PluginContext
    from ..models.seed_resolution import resolve_seeds
    from ..store import RunStore

    if (pretrained is None) == (run is None):
        raise AcdcError("model_args: give pretrained=CHECKPOINT_DIR, or run=RUN_DIR with model=MODEL_ID")
    if run is not None:
        if model is None:
            raise AcdcError(f"model_args run={run}: model=MODEL_ID is needed too (a model of that run)")
        store = RunStore.open(Path(run))
        stack.callback(store.close)
        config = model_overrides(store.config(), **overrides)
        hook = stack.enter_context(PluginContext(config)).hook
        seeds, model_dir = resolve_seeds(hook, config.models)
        digest = {r["id"]: r["digest"] for r in store.models()}.get(str(model))
        if digest is None:
            raise AcdcError(f"model_args model={model}: no such model in {run}")
        weights, _ = store.kept_file(digest)
        if weights is None:
            scratch = Path(tempfile.mkdtemp(prefix="acdc-lm-eval-"))
            stack.callback(shutil.rmtree, scratch, ignore_errors=True)
            weights = scratch / "model.safetensors"
            rebuild_weights(store, str(model), hook=hook, base_file=model_dir / "model.safetensors", out_file=weights,
                            seed_files={spec: d / "model.safetensors" for spec, d in seeds.items()})
    else:
        model_dir = Path(pretrained).expanduser()
        weights = model_dir / "model.safetensors"
        if not weights.is_file():
            raise AcdcError(f"model_args pretrained={pretrained}: no model.safetensors there")
        config = model_overrides(load_config(None), **overrides)
        hook = stack.enter_context(PluginContext(config)).hook

    def make_backend():
        backend = hook.acdc_make_backend(config=config, model_dir=model_dir)
        if backend is None:
            raise AcdcError(f"no plugin provides the backend {config.generation.backend!r}")
        stack.callback(backend.close)
        return backend

    return config, make_backend, weights, model_dir


def lm_eval_pair(context: str, continuation: str) -> tuple[str, str]:
    """A (context, continuation) as lm-eval's ``TemplateLM._encode_pair`` splits it: the context's trailing
    whitespace (spaces, newlines) moved to the continuation."""
    kept = context.rstrip()
    return (kept, context[len(kept):] + continuation) if kept else (context, continuation)


@register_model(MODEL_NAME)
class AcdcLM(LM):
    """lm-eval's model interface served by one resident acdc-engine backend, answers cached.

    Made by lm-eval from model_args (``lm-eval run --model acdc-engine --model_args pretrained=DIR`` or
    ``run=RUN_DIR,model=ID``; :func:`open_model`), optionally ``backend``, ``dtype``, ``batch_size`` (the
    config's ``generation`` settings), ``seed`` (of sampled generations), ``sample=J`` (answer as the
    control's J-th sample: generations and multiple-choice picks drawn at T = 0.7) and ``cache_dir``. lm-eval's
    ``device`` is taken and left to the backend, which chooses its own. Answers are cached in
    ``<cache_dir or models.cache_dir>/lm-eval/answers.sqlite``, as ``evaluate --lm-eval`` caches them.

    ``evaluate --lm-eval`` makes one with :meth:`serving` instead, and :meth:`use` chooses the member that
    answers next; the backend (``make_backend()``) is made and given the member's weights only when a
    request is not in the cache. ``counts`` tallies requests answered ``fresh`` and ``from_cache``, and
    ``backend_calls``.
    """

    def __init__(self, pretrained=None, run=None, model=None, *, backend=None, dtype=None, batch_size=None,
                 max_batch_size=None, device=None, seed: int = 0, sample: int | None = None,
                 cache_dir: str | None = None, **unknown) -> None:
        super().__init__()
        if unknown:
            raise AcdcError(f"model_args {', '.join(sorted(unknown))}: not known to the acdc-engine model (it takes "
                            "pretrained, run, model, backend, dtype, batch_size, seed, sample, cache_dir)")
        stack = ExitStack()
        try:
            config, make_backend, weights, model_dir = open_model(
                stack, pretrained=pretrained, run=run, model=model, backend=backend, dtype=dtype,
                batch_size=batch_size)
            cache = AnswerCache(Path(cache_dir or config.models.cache_dir).expanduser() / "lm-eval" / "answers.sqlite")
            stack.callback(cache.close)
        except BaseException:
            stack.close()
            raise
        self._finalizer = weakref.finalize(self, stack.close)
        self._serve(make_backend=make_backend, cache=cache, seed=int(seed), tokenizer_dir=model_dir,
                    decoding={"backend": config.generation.backend, "dtype": config.generation.dtype})
        label = str(model) if run is not None else Path(str(pretrained)).name
        self.use(Member(label, weights, None if sample is None else int(sample)))

    @classmethod
    def serving(cls, *, make_backend, cache: AnswerCache, decoding: dict, seed: int = 0,
                tokenizer_dir: Path | None = None) -> AcdcLM:
        """One for ``evaluate --lm-eval``: the evaluation's own backend and cache; members chosen by :meth:`use`."""
        lm = cls.__new__(cls)
        LM.__init__(lm)
        lm._serve(make_backend=make_backend, cache=cache, decoding=decoding, seed=seed, tokenizer_dir=tokenizer_dir)
        return lm

    def _serve(self, *, make_backend, cache: AnswerCache, decoding: dict, seed: int,
               tokenizer_dir: Path | None) -> None:
        self.make_backend, self.cache, self.seed, self.tokenizer_dir = make_backend, cache, seed, tokenizer_dir
        self.decoding_info = dict(decoding)
        self.decoding = text_digest(json.dumps(decoding, sort_keys=True))
        self.backend = None
        self.loaded: Path | None = None
        self.digests: dict[Path, str] = {}
        self.member: Member | None = None
        self._tokenizer = None
        self.counts = {"fresh": 0, "from_cache": 0, "backend_calls": 0}

    def use(self, member: Member) -> None:
        """The member whose weights answer the following requests."""
        if member.weights not in self.digests:
            self.digests[member.weights] = file_digest(member.weights)
        self.member = member

    # --- chat templates (lm-eval's --apply_chat_template), from the seeds' own tokenizer -------------------

    @property
    def tokenizer(self):
        """The model folder's tokenizer (loaded on first use, without the model)."""
        if self._tokenizer is None:
            if self.tokenizer_dir is None:
                raise AcdcError("this acdc-engine model has no tokenizer folder for a chat template")
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer_dir))
        return self._tokenizer

    @property
    def tokenizer_name(self) -> str:
        return str(self.tokenizer_dir).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """The tokenizer's chat template (``chat_template`` a name: that one of a tokenizer's named templates);
        None when not asked for."""
        if not chat_template:
            return None
        template = getattr(self.tokenizer, "chat_template", None)
        if isinstance(template, dict):
            name = chat_template if isinstance(chat_template, str) else "default"
            if name not in template:
                raise AcdcError(f"chat template {name!r}: the tokenizer of {self.tokenizer_dir} has "
                                f"{', '.join(sorted(template))}")
            template = template[name]
        if not template:
            raise AcdcError(f"--apply-chat-template: the tokenizer of {self.tokenizer_dir} has no chat template")
        return template

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        self.chat_template(True)  # one line when there is none
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt)

    def get_model_info(self) -> dict:
        """What lm-eval records in its results' ``config``: the dtype and the weights' content digest."""
        info = {"model_dtype": self.decoding_info.get("dtype"), "backend": self.decoding_info.get("backend")}
        if self.member is not None:
            info["model_sha"] = self.digests[self.member.weights]
        return info

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
        """Each (context, continuation)'s log-likelihood and greediness; the context's trailing whitespace is
        scored with the continuation, as lm-eval's own models score it (a chat template's context ends in a
        newline)."""
        out = self.scores([lm_eval_pair(*r.args) for r in requests])
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
        """Each request's continuation: greedy, or sampled where its generation kwargs ask for it
        (:func:`decoding_temperature`) from ``seed``; a control sample's at T = 0.7 from a seed of its own."""
        by_decoding = defaultdict(list)  # (temperature, seed): the requests' indices and asks
        for k, r in enumerate(requests):
            context, kwargs = r.args
            if self.member.sample is not None:
                decoding = (CONTROL_TEMPERATURE, self.sample_seed())
            else:
                temperature = decoding_temperature(kwargs)
                decoding = (temperature, self.seed if temperature > 0 else 0)
            until = kwargs.get("until") or []
            by_decoding[decoding].append((k, [context, int(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS)),
                                              [until] if isinstance(until, str) else list(until)]))
        out = [""] * len(requests)
        for (temperature, seed), group in by_decoding.items():
            def compute(backend, todo, temperature=temperature, seed=seed):
                texts = [""] * len(todo)
                groups = defaultdict(list)  # one backend call per (length, stop strings)
                for k, (_, length, stop) in enumerate(todo):
                    groups[(length, tuple(stop))].append(k)
                for (length, stop), ks in groups.items():
                    answers = backend.complete([todo[k][0] for k in ks], max_new_tokens=length, stop=stop,
                                               temperature=temperature, seed=seed)
                    for k, text in zip(ks, answers):
                        texts[k] = text
                return texts

            answers = self._answers(f"complete:T={temperature}:seed={seed}", [a for _, a in group], compute)
            for (k, _), text in zip(group, answers):
                out[k] = text
        return out


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
    """Each system's name and members: the task force's models, a seed, the control's samples, a model dir;
    each with its results folder's name and the model_args that make lm-eval's ``acdc-engine`` model answer
    as it does."""
    gen = ev.config.generation
    common = f"backend={gen.backend},dtype={gen.dtype}"
    out, taken = [], Counter()

    def unique(name: str) -> str:
        taken[name] += 1
        return name if taken[name] == 1 else f"{name}-{taken[name]}"

    for k, system in enumerate(ev.systems):
        if system.samples > 1:
            seed_dir = system.weights[0].parent
            group = [Member(f"sample {j}", system.weights[0], j, unique(f"control/sample-{j}"),
                            f"pretrained={seed_dir},{common},sample={j},seed={ev.seed}") for j in range(system.samples)]
        elif k == 0:
            group = [Member(m, w, None, unique(f"task-force/{m}"), f"run={ev.store.run_dir},model={m},{common}")
                     for m, w in zip(ev.force, system.weights)]
        else:
            kind = system.name.split(" ", 1)[0]  # "seed" or "model"
            group = [Member(system.name, w, None, unique(f"{kind}/{w.parent.name}"), f"pretrained={w.parent},{common}")
                     for w in system.weights]
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
    each), asked as lm-eval's CLI would with ``num_fewshot``, ``apply_chat_template`` (the tokenizer's chat
    template; a name picks one of its named templates), ``system_instruction`` and ``gen_kwargs`` (over the
    tasks' own generation kwargs); :meth:`run` scores an :class:`~acdc_engine.evaluation.systems.Evaluation`'s systems on
    them, each member's results written by lm-eval's ``EvaluationTracker`` under ``output_path``."""

    def __init__(self, tasks: list[str], *, include: Path | None = None, limit: int | None = None,
                 num_fewshot: int | None = None, apply_chat_template: bool | str = False,
                 system_instruction: str | None = None, gen_kwargs: dict | None = None) -> None:
        self.tasks, self.limit = list(tasks), limit
        if not self.tasks:
            raise AcdcError("--lm-eval needs at least one task name")
        if gen_kwargs:
            decoding_temperature(gen_kwargs, what="--gen-kwargs")
        self.options = {"num_fewshot": num_fewshot, "apply_chat_template": apply_chat_template,
                        "system_instruction": system_instruction, "gen_kwargs": dict(gen_kwargs or {}) or None}
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
        self.manager = task_manager(self.tasks, include)
        self.ev = self.cache = self.lm = None

    def evaluate_member(self, member: Member, tracker: EvaluationTracker | None = None) -> dict:
        """lm-eval's results for one member: aggregate metrics, configs and per-sample records per task."""
        self.lm.use(member)
        try:
            with quiet_stderr():
                results = lm_eval.simple_evaluate(
                    model=self.lm, model_args=member.args, tasks=self.tasks, task_manager=self.manager,
                    limit=self.limit, log_samples=True, bootstrap_iters=1000, evaluation_tracker=tracker,
                    **self.options)
        except ConnectionError as exc:  # a dataset neither cached nor reachable
            offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
            raise AcdcError(f"lm-eval tasks {','.join(self.tasks)}: {exc}" + (
                "; offline, only cached datasets load: run once with HF_DATASETS_OFFLINE=0 HF_HUB_OFFLINE=0 "
                "where the hub is reachable, or give local tasks with --lm-eval-include" if offline else "")) from exc
        results["config"]["model"] = MODEL_NAME  # the registered name: `lm-eval run --model` + model_args redo it
        return results

    @staticmethod
    def save_results(tracker: EvaluationTracker, member: Member, results: dict) -> Path:
        """The member's results as lm-eval's CLI saves them (``EvaluationTracker``): ``results_<date>.json``
        (lm-eval's results format) and ``samples_<task>_<date>.jsonl`` in ``<output_path>/<member.name>/``
        (sanitised as lm-eval does); the results file."""
        general = tracker.general_config_tracker
        general.model_source, general.model_name = MODEL_NAME, member.name
        general.model_name_sanitized = sanitize_model_name(member.name)
        samples = results["samples"]
        tracker.save_results_aggregated(results={k: v for k, v in results.items() if k != "samples"},
                                        samples=samples)
        folder = Path(tracker.output_path) / general.model_name_sanitized
        written = folder / f"results_{getattr(tracker, 'date_id', '')}.json"
        if not written.is_file():  # lm-eval logs a failed write and goes on
            raise AcdcError(f"lm-eval could not write its results under {folder}")
        for task, records in samples.items():
            tracker.save_results_samples(task_name=task, samples=records)
        return written
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

    def run(self, ev: Evaluation, samples_file: Path, output_path: Path | None = None) -> dict:
        """The report (``benchmarks``: per task its facts and per system its scores; ``cache``: requests
        answered fresh and from the cache), the per-sample records written to ``samples_file`` (JSONL), and
        each member's lm-eval results under ``output_path`` (default: beside ``samples_file``)."""
        gen = ev.config.generation  # the run's own backend (not generation.answer_backend): it scores likelihoods
        self.ev = ev
        self.cache = AnswerCache(Path(ev.config.models.cache_dir).expanduser() / "lm-eval" / "answers.sqlite")
        made = []

        def make_backend():
            backend = ev.hook.acdc_make_backend(config=ev.config, model_dir=ev.base_dir)
            if backend is None:
                raise AcdcError(f"no plugin provides the backend {gen.backend!r}")
            made.append(backend)
            return backend

        self.lm = AcdcLM.serving(make_backend=make_backend, cache=self.cache, seed=ev.seed,
                                 decoding={"backend": gen.backend, "dtype": gen.dtype}, tokenizer_dir=ev.base_dir)
        try:
            return self._run(samples_file, Path(output_path) if output_path else
                             samples_file.with_name(samples_file.name.replace("-samples.jsonl", "") + "-lm-eval"))
        finally:
            for backend in made:
                backend.close()
            self.cache.close()

    def _run(self, samples_file: Path, output_path: Path) -> dict:
        report = {"run_dir": str(self.ev.store.run_dir), "judge": self.ev.judge_name, "limit": self.limit,
                  "control_temperature": CONTROL_TEMPERATURE, "lm_eval_version": lm_eval.__version__,
                  **{k: v for k, v in self.options.items()}, "samples_file": str(samples_file),
                  "output_path": str(output_path), "benchmarks": {}}
        samples_file.parent.mkdir(parents=True, exist_ok=True)
        with open(samples_file, "w") as log:
            for name, group in members(self.ev):
                self.ev.on_progress(f"lm-eval: {name}")
                trackers = [EvaluationTracker(output_path=str(output_path)) for _ in group]
                results = [self.evaluate_member(m, t) for m, t in zip(group, trackers)]
                for task in results[0]["samples"]:  # the leaf tasks: a group's or a tag's, one by one
                    about, scores = self.score_task(task, name, group, results, log)
                    report["benchmarks"].setdefault(task, {**about, "systems": {}})["systems"][name] = scores
                files = [self.save_results(t, m, r) for t, m, r in zip(trackers, group, results)]
                for task in results[0]["samples"]:
                    for entry, path in zip(report["benchmarks"][task]["systems"][name]["members"], files):
                        entry["results_file"] = str(path)
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
        entry = {"n": len(group), "members": [{"member": m.label, "sample": m.sample, "model_args": m.args,
                              "metrics": {k: v for k, v in res["results"][task].items() if k not in ("alias", "name")}}
                             for m, res in zip(group, results)]}
        if any(v is None for row in verdicts for v in row):
            return about, {**entry, "coverage": None, "majority": None, "best_of_n": None}
        majority = [majority_pick([member_answer(output_type, samples[d]) for samples in per_member]) for d in docs]
        picks = self.judge_picks(output_type, per_member) if len(group) > 1 else [0] * len(docs)
        return about, {**entry, **system_scores(verdicts, majority, picks)}
