"""Forged seed experts: a base model fine-tuned briefly on one capability.

AC/DC starts from several experts of one base, and only one SmolLM2
checkpoint exists offline. ``forge`` makes more: a short LoRA fine-tune
(peft) of the base on the procedural generator's task families of one
capability, with their correct answers as targets (``Answer: ...``, the
format the instructions ask for), mixed with *replay*: the base's own greedy
answers to general prompts and to the other capabilities' tasks that it
solves, generated once per base and cached, so that the expert keeps what the
base could do; and (``protect_energy``) the adapters' weight change is
kept orthogonal to the main input directions of those other capabilities' texts.
The LoRA is merged into the weights and the checkpoint written in the base's
exact layout (tensor names, shapes, dtypes; config and tokenizer files
copied), atomically, to ``<cache_dir>/forged/<base>-<capability>-<key>``,
where the key hashes the base's weights, the capability, the recipe and the
training data. A ``forge.json`` manifest beside the weights lets the
``forged-seeds`` plugin resolve ``forged:<base>`` seed specs.

:func:`compare` scores the base and the experts on held-out instances of
every capability (distinct instructions that are never trained on nor
replayed) with the run's backend in float32, answer extraction and the
families' own scorers.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from acdc_engine.answers import extract_answer
from acdc_engine.digest import file_digest
from acdc_engine.errors import AcdcError
from acdc_engine.tasks import Instance, TaskCodeError, TaskSpec

if TYPE_CHECKING:  # torch is imported where it is used, so that the CLI starts fast
    import torch

FORGED_DIR = "forged"
MANIFEST = "forge.json"
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
class ForgeRecipe:
    """How an expert is trained; every field is part of its cache key.

    Each step sees ``batch_size`` examples: ``replay_per_batch`` replayed, the
    rest the capability's tasks (``train_per_family`` instances per variant
    and difficulty in ``difficulties``, cycled). ``worked``: task targets
    show the instance's working before the answer. ``replay_loss``: ``ce``
    trains on the replayed replies' tokens (cross-entropy); ``kl`` keeps the
    expert's whole next-token distribution on them close to the base's
    (KL(base || expert)). ``replay_weight`` multiplies the replay loss.
    ``replay_solved_only``: of the other capabilities' tasks, only those the
    base solved are replayed (what it could do is what the expert must keep). ``bf16``: forward and backward
    passes in bfloat16 autocast (the LoRA weights and the optimiser stay float32).
    ``lora_layers``: adapters on every linear layer of the first (input-side)
    ``lora_layers`` decoder layers only (None: all layers). ``protect_energy``:
    each adapted layer's weight change is kept orthogonal to the input
    directions that carry this fraction of its inputs' energy over the other
    capabilities' replayed texts (None: no protection).
    """

    steps: int = 40
    batch_size: int = 8
    replay_per_batch: int = 4
    lr: float = 2.5e-4
    rank: int = 16
    train_per_family: int = 24
    difficulties: tuple[int, ...] = (1, 2, 3)
    max_len: int = 160
    worked: bool = True
    replay_loss: str = "ce"
    replay_weight: float = 1.0
    replay_solved_only: bool = True
    bf16: bool = True
    lora_layers: int | None = None
    protect_energy: float | None = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if self.replay_loss not in ("kl", "ce"):
            raise AcdcError(f"forge replay_loss must be 'kl' or 'ce', not {self.replay_loss!r}")
        if not 0 <= self.replay_per_batch < self.batch_size:
            raise AcdcError(f"forge replay_per_batch must be at least 0 and below batch_size ({self.batch_size}), "
                            f"not {self.replay_per_batch}: each step needs a task example")
        if self.lora_layers is not None and self.lora_layers < 1:
            raise AcdcError(f"forge lora_layers must be at least 1 (or None for all layers), not {self.lora_layers}")
        if self.protect_energy is not None and not 0 < self.protect_energy < 1:
            raise AcdcError(f"forge protect_energy must be between 0 and 1 (or None), not {self.protect_energy}")


@dataclass(frozen=True)
class Example:
    """One training text: a user prompt and the reply to learn (``ended``: it stops there)."""

    prompt: str
    reply: str
    ended: bool = True


@dataclass(frozen=True)
class Forged:
    """A forged expert's directory; ``cached`` if an earlier forge made it."""

    capability: str
    path: Path
    cached: bool
    seconds: float


# --- data -------------------------------------------------------------------------


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


def instances(hook, specs: list[TaskSpec], limits) -> list[tuple[TaskSpec, list]]:
    """Each family with its instances, from its own code in the sandbox."""
    out = []
    for spec in specs:
        try:
            out.append((spec, hook.acdc_task_instances(task=spec, limits=limits)))
        except TaskCodeError as exc:
            raise AcdcError(f"task family {spec.name}: {exc}") from None
    return out


def target(data: dict, worked: bool = True) -> str:
    """The correct reply in the format the instructions ask for, after the instance's ``working`` if
    ``worked`` and it has one."""
    answer = data["answer"]
    line = "Answer: " + (", ".join(map(str, answer)) if isinstance(answer, list) else str(answer))
    return f"{data['working']}\n{line}" if worked and data.get("working") else line


def task_examples(hook, capability: str, recipe: ForgeRecipe, limits, exclude: set[str]) -> list[Example]:
    """Training examples of ``capability``: distinct instructions, none in ``exclude`` (the held-out ones)."""
    out: dict[str, Example] = {}
    for _, insts in instances(hook, families(hook, capability, recipe.difficulties, recipe.train_per_family, "train",
                                             recipe.seed), limits):
        for inst in insts:
            if inst.instruction not in exclude:
                out.setdefault(inst.instruction, Example(inst.instruction, target(inst.data, recipe.worked)))
    return list(out.values())


def held_out(hook, limits, caps: list[str]) -> dict[str, list[tuple[TaskSpec, list]]]:
    """Held-out families of each capability with their instances (other seeds than training and replay).

    Each distinct instruction counts once: small task spaces repeat instructions
    (one of the two ``units`` time questions at difficulty 1 came 8 times in 16
    draws), and a repeat would weigh one answer several times. A family left with
    no instance of its own is dropped.
    """
    held: dict[str, list[tuple[TaskSpec, list]]] = {}
    for cap in caps:
        seen: set[str] = set()
        held[cap] = []
        for spec, insts in instances(hook, families(hook, cap, EVAL_DIFFICULTIES, HELD_OUT_PER_FAMILY, "held-out"), limits):
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


def replay_prompts(hook, limits, exclude: set[str]) -> list[ReplayPrompt]:
    """The general prompts, then a few instances of every capability; distinct prompts, none in
    ``exclude`` (the held-out instructions)."""
    out: dict[str, ReplayPrompt] = {p: ReplayPrompt(None, p) for p in GENERAL_PROMPTS}
    for cap in capabilities(hook):
        for spec, insts in instances(hook, families(hook, cap, (1, 2, 3), REPLAY_PER_FAMILY, "replay"), limits):
            for inst in insts:
                if inst.instruction not in exclude:
                    out.setdefault(inst.instruction, ReplayPrompt(cap, inst.instruction, spec, inst))
    return list(out.values())


def generate_replay(hook, config, base_dir: Path, prompts: list[ReplayPrompt], on_batch=None) -> list[dict]:
    """The base's greedy replies to ``prompts`` with the run's backend (exact: :func:`_exact_backend`);
    ``ended``: before the token limit; ``score``: the family's score of a task instance's reply (None
    for a general prompt)."""
    from transformers import AutoTokenizer

    limit = config.generation.max_new_tokens
    backend = _exact_backend(hook, config, base_dir)
    try:
        replies = backend.generate([r.prompt for r in prompts], max_new_tokens=limit, on_batch=on_batch)
    finally:
        backend.close()
    scores = _score_replies(hook, config.sandbox, prompts, replies)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    return [{"capability": r.capability, "prompt": r.prompt, "reply": reply, "score": score,
             "ended": len(tokenizer(reply, add_special_tokens=False).input_ids) < limit}
            for r, reply, score in zip(prompts, replies, scores)]


def _score_replies(hook, limits, prompts: list[ReplayPrompt], replies: list[str]) -> list[float | None]:
    """Each task instance's reply scored by its family in the sandbox (one call per family); None for
    a general prompt."""
    by_family: dict[str, list[int]] = {}
    for i, r in enumerate(prompts):
        if r.task is not None:
            by_family.setdefault(r.task.digest, []).append(i)
    scores: list[float | None] = [None] * len(prompts)
    for indices in by_family.values():
        found = hook.acdc_score_submissions(task=prompts[indices[0]].task,
                                            instances=[prompts[i].instance for i in indices],
                                            submissions=[extract_answer(replies[i]) for i in indices], limits=limits)
        for i, score in zip(indices, found):
            scores[i] = score or 0.0
    return scores


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- training -----------------------------------------------------------------------


def _encode(tokenizer, ex: Example, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of the chat-formatted prompt plus reply, and labels (-100 on the prompt)."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": ex.prompt}], tokenize=False,
                                           add_generation_prompt=True)
    p = tokenizer(prompt).input_ids
    a = tokenizer(ex.reply, add_special_tokens=False).input_ids + ([tokenizer.eos_token_id] if ex.ended else [])
    return (p + a)[:max_len], ([-100] * len(p) + a)[:max_len]


def _batch(encoded: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    import torch

    width = max(len(ids) for ids, _ in encoded)
    ids = torch.tensor([i + [pad_id] * (width - len(i)) for i, _ in encoded])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in encoded])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in encoded])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _reply_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the reply tokens: the mean over examples of each one's mean token loss."""
    import torch

    logits, labels = logits[:, :-1], labels[:, 1:]
    tokens = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                               ignore_index=-100, reduction="none").view(labels.shape)
    return (tokens.sum(1) / (labels != -100).sum(1).clamp(min=1)).mean()


def _kl_to_base(logits: torch.Tensor, base_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(base || model) of the next-token distributions, averaged over the reply tokens."""
    import torch

    at = labels[:, 1:] != -100
    student = torch.log_softmax(logits[:, :-1][at].float(), dim=-1)
    teacher = torch.log_softmax(base_logits[:, :-1][at].float(), dim=-1)
    return torch.nn.functional.kl_div(student, teacher, log_target=True, reduction="batchmean")


def _protected_subspaces(model, encoded: list[tuple[list[int], list[int]]], energy: float, pad_id: int, *,
                         bf16: bool, batch_size: int = 16) -> dict[str, torch.Tensor]:
    """For each adapted layer, an orthonormal basis (columns) of the input directions that carry
    ``energy`` of its inputs' energy over ``encoded``'s tokens, prompt and reply, every token of
    every text counted (the chat template's system turn too, as often as it is seen: counted once,
    it made a much weaker strings expert; docs/performance.md)."""
    import torch
    from peft.tuners.lora import LoraLayer

    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    grams: dict[str, torch.Tensor] = {}
    same_input: dict[str, str] = {}  # a layer fed the tensor an earlier one is (q, k, v; gate, up) -> that one
    counted: list[torch.Tensor] = []  # the current batch's token positions that count
    last: list = [None, None]  # the input tensor the previous layer was fed, and that layer

    def accumulate(name):
        def hook(_module, args, _output):
            if args[0] is last[0]:
                same_input[name] = last[1]
                return
            last[:] = [args[0], name]
            x = args[0][counted[0]].float()
            grams[name] = grams.get(name, 0) + (x.T @ x).double()
        return hook

    encoded = sorted(encoded, key=lambda e: len(e[0]))  # batches of like lengths: little padding
    decoder = model.get_base_model().model  # the layers without the output head
    handles = [m.base_layer.register_forward_hook(accumulate(name)) for name, m in layers.items()]
    try:
        with torch.no_grad(), model.disable_adapter(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(encoded), batch_size):
                batch = _batch(encoded[start:start + batch_size], pad_id)
                counted[:] = [batch["attention_mask"].bool()]
                decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for handle in handles:
            handle.remove()
    bases = {}
    for name, gram in grams.items():
        values, vectors = torch.linalg.eigh(gram.float())
        values, vectors = values.flip(0).clamp(min=0).double(), vectors.flip(1)
        kept = int(torch.searchsorted(values.cumsum(0) / values.sum(), torch.tensor(energy, dtype=values.dtype))) + 1
        bases[name] = vectors[:, :kept].contiguous()
    return {name: bases[same_input.get(name, name)] for name in layers}


def _project_out(model, bases: dict[str, torch.Tensor]) -> None:
    """Removes from every LoRA ``A`` the protected input directions, so that the adapters' weight
    change maps them to zero."""
    import torch

    with torch.no_grad():
        for name, m in model.named_modules():
            if name in bases:
                a = m.lora_A["default"].weight
                a -= (a @ bases[name]) @ bases[name].T


def _cycle(items: list, rng: random.Random):
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def train(base_dir: Path, tasks: list[Example], replayed: list[Example], recipe: ForgeRecipe,
          on_step: Callable[[int, float], None] | None = None, protected: list[Example] = ()):
    """The base with a LoRA trained on ``tasks`` and ``replayed``, merged into its weights; with
    ``recipe.protect_energy``, its weight change leaves ``protected``'s main input directions alone."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    targets, layers = "all-linear", None
    if recipe.lora_layers is not None:  # peft takes a layer subset only with the modules named
        targets = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                          if isinstance(module, torch.nn.Linear) and module is not model.get_output_embeddings()})
        layers = list(range(min(recipe.lora_layers, model.config.num_hidden_layers)))
    lora = LoraConfig(r=recipe.rank, lora_alpha=2 * recipe.rank, lora_dropout=0.0, target_modules=targets,
                      layers_to_transform=layers, task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft 0.21 calls a transformers 5 name deprecated for v6
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        model = get_peft_model(model, lora)
    bases = {}
    if recipe.protect_energy is not None and protected:
        bases = _protected_subspaces(model, [_encode(tokenizer, e, recipe.max_len) for e in protected],
                                     recipe.protect_energy, pad_id, bf16=recipe.bf16)
        _project_out(model, bases)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / recipe.steps)
    task_stream = _cycle([_encode(tokenizer, e, recipe.max_len) for e in tasks], rng)
    n_replay = recipe.replay_per_batch if replayed else 0
    replay_stream = _cycle([_encode(tokenizer, e, recipe.max_len) for e in replayed], rng) if n_replay else None
    model.train()
    n_task = recipe.batch_size - n_replay

    def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    for step in range(recipe.steps):
        task = _batch([next(task_stream) for _ in range(n_task)], pad_id)  # two batches: less padding
        loss = _reply_ce(logits(task), task["labels"])
        if n_replay:
            replay = _batch([next(replay_stream) for _ in range(n_replay)], pad_id)
            if recipe.replay_loss == "kl":
                with torch.no_grad(), model.disable_adapter():
                    base_logits = logits(replay)
                replay_loss = _kl_to_base(logits(replay), base_logits, replay["labels"])
            else:
                replay_loss = _reply_ce(logits(replay), replay["labels"])
            loss = loss + recipe.replay_weight * replay_loss
        loss.backward()
        optimizer.step()
        _project_out(model, bases)
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if on_step:
            on_step(step + 1, loss.item())
    return model.merge_and_unload().eval()


def save_like_base(model, base_dir: Path, out_dir: Path) -> None:
    """Writes ``model``'s weights in the base's exact safetensors layout and copies its other files."""
    from acdc_engine.checkpoint import CheckpointReader, CheckpointWriter

    with CheckpointReader(base_dir / "model.safetensors") as base:
        layout = {name: (base.dtype(name), base.shape(name)) for name in base.keys()}
        metadata = base.metadata
    state = model.state_dict()
    missing = [name for name in layout if name not in state]
    if missing:
        raise AcdcError(f"forged model has no tensor {missing[0]} of the base {base_dir}")
    writer = CheckpointWriter(out_dir / "model.safetensors", layout, metadata or None)
    try:
        for name, (dtype, _) in layout.items():
            writer.write(name, state[name].detach().to(dtype))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    for f in base_dir.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", MANIFEST):
            shutil.copy2(f, out_dir / f.name)


# --- the cache ------------------------------------------------------------------------


def expert_dir(cache_dir: Path, base_spec: str, base_digest: str, capability: str, recipe: ForgeRecipe,
               replay_key: str, data_key: str) -> Path:
    """Where the expert of these inputs lives: named by base, capability and a hash of everything
    (``data_key``: of its training families and the held-out instructions they must avoid)."""
    key = hashlib.sha256(json.dumps([base_spec, base_digest, capability, asdict(recipe), replay_key, data_key])
                         .encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", base_spec.rstrip("/").rsplit("/", 1)[-1]).strip("._") or "base"
    return Path(cache_dir).expanduser() / FORGED_DIR / f"{slug}-{capability}-{key}"


def _install(tmp: Path, final: Path) -> None:
    """Moves a complete expert directory into place (replacing an older one)."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class Forge:
    """Forges experts of one base; they share its replay data."""

    def __init__(self, hook, config, *, base: str | None = None, recipe: ForgeRecipe = ForgeRecipe()) -> None:
        from acdc_engine.seeds import resolve

        self.hook, self.config, self.recipe = hook, config, recipe
        self.cache_dir = Path(config.models.cache_dir).expanduser()
        self.base_spec = base or config.models.base
        self.base_dir = resolve(hook, self.base_spec, self.cache_dir)
        self.base_digest = file_digest(self.base_dir / "model.safetensors")
        self.held = held_out(hook, config.sandbox, capabilities(hook))  # never trained on, nor replayed
        self.held_instructions = instructions(self.held)
        self.replay_prompts = replay_prompts(hook, config.sandbox, exclude=self.held_instructions)
        gen = config.generation
        self.replay_key = hashlib.sha256(json.dumps([REPLAY_FORMAT, self.base_digest, gen.backend,
                                                     gen.max_new_tokens, [(r.capability, r.prompt)
                                                                          for r in self.replay_prompts]])
                                         .encode()).hexdigest()[:12]
        self.replay_file = self.cache_dir / FORGED_DIR / f"replay-{self.replay_key}.json"

    def replay(self, on_batch=None) -> list[dict]:
        """The base's replies to the replay prompts: cached, or generated now."""
        if not self.replay_file.is_file():
            records = generate_replay(self.hook, self.config, self.base_dir, self.replay_prompts, on_batch)
            _write_atomic(self.replay_file, json.dumps(records, indent=0))
        return json.loads(self.replay_file.read_text())

    def path(self, capability: str) -> Path:
        """The expert's directory; another recipe, base, replay or training data (the families'
        instances, with their working) gives another one."""
        train = [spec.digest for spec in families(self.hook, capability, self.recipe.difficulties, self.recipe.train_per_family,
                                                  "train", self.recipe.seed)]
        data_key = hashlib.sha256(json.dumps([train, sorted(self.held_instructions)]).encode()).hexdigest()
        return expert_dir(self.cache_dir, self.base_spec, self.base_digest, capability, self.recipe, self.replay_key,
                          data_key)

    def cached(self, capability: str) -> Forged | None:
        path = self.path(capability)
        if not (path / MANIFEST).is_file():
            return None
        return Forged(capability, path, True, json.loads((path / MANIFEST).read_text())["seconds"])

    def forge(self, capability: str, *, force: bool = False, on_step=None) -> Forged:
        """The expert of ``capability``: from the cache, or trained, merged and saved (atomically).

        Its time counts from the training data to the installed directory
        (the replay data, shared by all experts, is made before).
        """
        check_capabilities(self.hook, [capability])
        if not force and (found := self.cached(capability)):
            return found
        records = self.replay()
        final = self.path(capability)
        started = time.monotonic()
        tasks = task_examples(self.hook, capability, self.recipe, self.config.sandbox, self.held_instructions)
        others = [r for r in records if r["capability"] != capability]
        protected = [Example(r["prompt"], r["reply"], r["ended"]) for r in others]
        replayed = [e for e, r in zip(protected, others)
                    if r["score"] is None or r["score"] > 0 or not self.recipe.replay_solved_only]
        model = train(self.base_dir, tasks, replayed, self.recipe, on_step, protected)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            save_like_base(model, self.base_dir, tmp)
            seconds = time.monotonic() - started
            (tmp / MANIFEST).write_text(json.dumps({
                "base": self.base_spec, "base_digest": self.base_digest, "capability": capability,
                "recipe": asdict(self.recipe), "task_examples": len(tasks), "replay_examples": len(replayed),
                "seconds": round(seconds, 1), "created": time.time()}, indent=1))
            _install(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Forged(capability, final, False, seconds)


# --- evaluation -----------------------------------------------------------------------


def _exact_backend(hook, config, model_dir: Path):
    """The run's backend in float32, whatever the run's dtype: in bfloat16 a greedy answer depends on
    which prompts share its batch (the rounding follows the padded layout), which moved single
    capabilities by several points between two evaluations of the same model, and made the base
    fail replay prompts it solves alone."""
    config = config.model_copy(update={"generation": config.generation.model_copy(update={"dtype": "float32"})})
    backend = hook.acdc_make_backend(config=config, model_dir=model_dir)
    if backend is None:
        raise AcdcError(f"no plugin provides the backend {config.generation.backend!r}")
    return backend


def compare(hook, config, models: dict[str, Path], held: dict[str, list[tuple[TaskSpec, list]]], *,
            on_batch=None) -> dict[str, dict[str, float]]:
    """Pass rate (mean score) of each model on each capability's held-out families (:func:`held_out`).

    ``models`` maps names to checkpoints of one architecture; the first fixes it for the backend.
    Answers are exact (:func:`_exact_backend`).
    """
    prompts = [inst.instruction for pairs in held.values() for _, insts in pairs for inst in insts]
    backend = _exact_backend(hook, config, next(iter(models.values())))
    rates: dict[str, dict[str, float]] = {}
    try:
        for name, d in models.items():
            backend.load_weights(Path(d) / "model.safetensors")
            texts = iter(backend.generate(prompts, max_new_tokens=config.generation.max_new_tokens,
                                          on_batch=on_batch))
            rates[name] = {}
            for cap, pairs in held.items():
                scores = []
                for spec, insts in pairs:
                    subs = [extract_answer(next(texts)) for _ in insts]
                    scores += hook.acdc_score_submissions(task=spec, instances=insts, submissions=subs,
                                                          limits=config.sandbox)
                rates[name][cap] = sum(s or 0.0 for s in scores) / len(scores)
    finally:
        backend.close()
    return rates
