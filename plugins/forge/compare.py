"""Comparing the base and its experts on every capability's held-out families."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text

from acdc_engine.api import AcdcError, TaskSpec, extract_answer


def exact_backend(hook, config, model_dir: Path):
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
            on_batch=None, on_model=None) -> dict[str, dict[str, float]]:
    """Pass rate (mean score) of each model on each capability's held-out families (:func:`held_out`);
    ``on_model(name)`` before each model is answered, ``on_batch(n)`` counts its answers.

    ``models`` maps names to checkpoints of one architecture; the first fixes it for the backend.
    Answers are exact (:func:`exact_backend`).
    """
    prompts = [inst.instruction for pairs in held.values() for _, insts in pairs for inst in insts]
    backend = exact_backend(hook, config, next(iter(models.values())))
    rates: dict[str, dict[str, float]] = {}
    try:
        for name, d in models.items():
            if on_model:
                on_model(name)
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



def forge_table(rates: dict[str, dict[str, float]], held: dict, own: dict[str, str]) -> Group:
    """Pass rate (%) per model and capability on held-out tasks, a model's own capability marked;
    then a line per expert: its gain on its capability and the range of its changes elsewhere."""
    table = Table(title="held-out pass rate % (* own capability)")
    table.add_column("model")
    for cap, pairs in held.items():
        table.add_column(f"{cap} ({sum(len(i) for _, i in pairs)})", justify="right")
    for name, by_cap in rates.items():
        table.add_row(name, *(f"[bold green]{100 * r:.0f}*[/]" if own.get(name) == cap else f"{100 * r:.0f}"
                              for cap, r in by_cap.items()))
    base = rates.get("base")
    lines = [_expert_summary(name, cap, rates[name], base) for name, cap in own.items()] if base else []
    return Group(table, *(Text(line) for line in lines))


def _expert_summary(name: str, own: str, rates: dict[str, float], base: dict[str, float]) -> str:
    """One line: the expert's points over the base on its capability, and the range elsewhere."""
    elsewhere = {cap: 100 * (rates[cap] - base[cap]) for cap in base if cap != own}
    worst = min(elsewhere, key=elsewhere.get)
    return (f"{name}: {100 * (rates[own] - base[own]):+.0f} points on {own}; elsewhere "
            f"{elsewhere[worst]:+.0f} ({worst}) to {max(elsewhere.values()):+.0f}")
