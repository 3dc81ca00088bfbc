"""The seed experts on the screened development set: each against the base by kind, and together against the control.

Usage: python benchmarks/experts.py [--out FILE]

Answers the screened set (``benchmarks/dev_set.py``) with the base and every seed of the default config
(the forged experts, forged first if missing), greedily, and the base sampled 3 times at T = 0.7, as the
discovery benchmark asks (multiple choice by likelihood, code scored in the sandbox; answers cached in
the discovery benchmark's answer book, so its runs reuse them). Prints each model's accuracy per kind of
question and its gap to the base, each gap with its 90 % paired bootstrap interval, and the Coverage of
the seed experts (N = 3, greedy) against the control of 3, with the interval of that gap: issue 42's
step 2 targets (+8 points on an expert's own kind, no more than -3 elsewhere; experts >= control + 3).
Other experts are measured by pointing ``ACDC_MODELS__CACHE_DIR`` at a cache that holds them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dev_set import screened_set
from discovery import Answerer, say


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="Write the figures as JSON here.")
    args = parser.parse_args()

    import numpy as np

    from acdc_engine.ui.commands import quiet_libraries
    from acdc_engine.config import load_config
    from acdc_engine.evaluation.discovery_measure import AnswerBook, Member, covered, gap_interval
    from acdc_engine.plugin_manager import PluginContext
    from acdc_engine.models.seed_resolution import resolve_seeds

    quiet_libraries()
    config = load_config(None, [])
    cache = Path(config.models.cache_dir).expanduser()
    items = screened_set(cache)
    kinds = np.array([i.kind for i in items])
    started = time.monotonic()
    with PluginContext(config) as plugins:
        seed_dirs, base_dir = resolve_seeds(plugins.hook, config.models)
        answerer = Answerer(plugins.hook, config, base_dir, items)
        book = AnswerBook(items, cache / "discovery-answers.json", answerer, choose=answerer.choose,
                          decoding=answerer.decoding)
        try:
            base = Member("base", base_dir / "model.safetensors")
            experts = [Member(spec, d / "model.safetensors") for spec, d in seed_dirs.items() if d != base_dir]
            hits = {m.model: np.array(book.verdicts(m), dtype=bool) for m in [base, *experts]}
            say(f"{'model':<40}" + "".join(f"{k:>10}" for k in sorted(set(kinds))) + f"{'all':>8}")
            figures = {"models": {}}
            for name, h in hits.items():
                by_kind = {k: float(h[kinds == k].mean()) for k in sorted(set(kinds))}
                gaps = {k: v - float(hits["base"][kinds == k].mean()) for k, v in by_kind.items()}
                figures["models"][name] = {"by_kind": by_kind, "gap_to_base": gaps, "all": float(h.mean())}
                say(f"{name[:40]:<40}" + "".join(f"{100 * v:>6.1f}" + (f"{100 * gaps[k]:+4.0f}" if name != "base"
                                                                       else "    ") for k, v in by_kind.items())
                    + f"{100 * h.mean():>8.1f}")
            for name, h in hits.items():  # is each gap more than another draw of questions would give?
                if name == "base":
                    continue
                spans = {k: gap_interval(h[kinds == k], hits["base"][kinds == k]) for k in sorted(set(kinds))}
                figures["models"][name]["gap_interval"] = spans
                say(f"  {name}: gap to the base, 90 % interval: " + "; ".join(
                    f"{k} {100 * lo:+.1f} to {100 * hi:+.1f}" for k, (lo, hi) in spans.items()))
            control = covered(book, [Member("base", base.weights, j) for j in range(3)])
            force = covered(book, experts[:3])
            lo, hi = gap_interval(force, control)
            figures.update(experts_3=float(force.mean()), control_3=float(control.mean()), gap_interval=[lo, hi])
            say(f"seed experts ({len(experts[:3])}, greedy): Coverage {100 * force.mean():.1f} %; control of 3 "
                f"(the base at T = 0.7): {100 * control.mean():.1f} %; gap {100 * (force.mean() - control.mean()):+.1f} "
                f"points (90 % interval {100 * lo:+.1f} to {100 * hi:+.1f}); target +3")
        finally:
            answerer.close()
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))
    say(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
