"""Training an expert: a short LoRA fine-tune of the base on task examples mixed with replay, whose factors
:mod:`.delta` writes and applies."""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from acdc_engine.api import AcdcError
from .data import Example, encode, pad_batch
from .delta import Factors, lora_factors
from .phases import Phase, quiet
from .protect import project_out, protected_subspaces

if TYPE_CHECKING:  # torch is imported where it is used, so that the CLI starts fast
    import torch


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
    capabilities' replayed texts (None: no protection). ``threads``: the CPU
    threads training runs on, whatever the process has; part of the recipe
    because the trained factors' bits depend on it (one thread and two round
    bf16 sums differently), so a forge of a recipe repeats it bit for bit on
    a CPU of the same kind.
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
    threads: int = 1

    def __post_init__(self) -> None:
        if self.replay_loss not in ("kl", "ce"):
            raise AcdcError(f"forge replay_loss must be 'kl' or 'ce', not {self.replay_loss!r}")
        if not 0 <= self.replay_per_batch < self.batch_size:
            raise AcdcError(f"forge replay_per_batch must be at least 0 and below batch_size ({self.batch_size}), "
                            f"not {self.replay_per_batch}: each step needs a task example")
        if self.lora_layers is not None and self.lora_layers < 1:
            raise AcdcError(f"forge lora_layers must be at least 1 (or None for all layers), not {self.lora_layers}")
        if self.threads < 1:
            raise AcdcError(f"forge threads must be at least 1, not {self.threads}")
        if self.protect_energy is not None and not 0 < self.protect_energy < 1:
            raise AcdcError(f"forge protect_energy must be between 0 and 1 (or None), not {self.protect_energy}")





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



def _cycle(items: list, rng: random.Random):
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order



def train(base_dir: Path, tasks: list[Example], replayed: list[Example], recipe: ForgeRecipe,
          on_step: Callable[[int, float], None] | None = None, protected: list[Example] = (),
          phase: Phase = quiet) -> Factors:
    """The factors of a LoRA of the base trained on ``tasks`` and ``replayed`` (:mod:`.delta`); with
    ``recipe.protect_energy``, its weight change leaves ``protected``'s main input directions alone.
    ``on_step(step, loss)`` follows each training step; the work before step 1 shows as ``phase``s."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        return _train(base_dir, tasks, replayed, recipe, on_step, protected, phase)
    finally:
        torch.set_num_threads(threads)


def _train(base_dir, tasks, replayed, recipe, on_step, protected, phase) -> Factors:
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
        bases = protected_subspaces(model, [encode(tokenizer, e, recipe.max_len) for e in protected],
                                     recipe.protect_energy, pad_id, bf16=recipe.bf16, phase=phase)
        project_out(model, bases)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / recipe.steps)
    task_stream = _cycle([encode(tokenizer, e, recipe.max_len) for e in tasks], rng)
    n_replay = recipe.replay_per_batch if replayed else 0
    replay_stream = _cycle([encode(tokenizer, e, recipe.max_len) for e in replayed], rng) if n_replay else None
    model.train()
    n_task = recipe.batch_size - n_replay

    def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    for step in range(recipe.steps):
        task = pad_batch([next(task_stream) for _ in range(n_task)], pad_id)  # two batches: less padding
        loss = _reply_ce(logits(task), task["labels"])
        if n_replay:
            replay = pad_batch([next(replay_stream) for _ in range(n_replay)], pad_id)
            if recipe.replay_loss == "kl":
                with torch.no_grad(), model.disable_adapter():
                    base_logits = logits(replay)
                replay_loss = _kl_to_base(logits(replay), base_logits, replay["labels"])
            else:
                replay_loss = _reply_ce(logits(replay), replay["labels"])
            loss = loss + recipe.replay_weight * replay_loss
        loss.backward()
        optimizer.step()
        project_out(model, bases)
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if on_step:
            on_step(step + 1, loss.item())
    return lora_factors(model)
