"""The run: the coevolution loop and what it drives within a generation (population, task pool, intake,
evaluator, executors, ledger, statistics, weight cache, phase clock)."""
