"""After the run: a run's task force against baselines on outside benchmarks (``acdc-engine evaluate``,
lm-evaluation-harness), and the discovery measurement."""
