"""Where a generation's time went: a stopwatch that switches between phases.

The loop switches the clock whenever a step starts, so every second of a
generation is charged to exactly one phase, and reads it out (with the tokens
generated) into the generation's statistics.
"""

from __future__ import annotations

import time

PHASES = ("materialise", "generate", "score", "select", "adapt tasks", "checkpoint")


class PhaseClock:
    """Accumulates wall time per phase; one phase runs at a time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.tokens = 0
        self.counts: dict[str, int] = {"answers_cached": 0, "answers_generated": 0}
        self._phase: str | None = None
        self._since = time.perf_counter()

    def restart(self, phase: str) -> None:
        """Starts ``phase`` without charging the time since the last switch to anything."""
        self._phase, self._since = phase, time.perf_counter()

    def switch(self, phase: str) -> None:
        """Charges the time since the last switch to the running phase and starts ``phase``."""
        now = time.perf_counter()
        if self._phase is not None:
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._since
        self._phase, self._since = phase, now

    def record(self) -> dict[str, float | int]:
        """``time_<phase>_s`` per phase, the total, tokens, tokens/s and counts; starts afresh."""
        self.switch(self._phase)
        out: dict[str, float | int] = {f"time_{p.replace(' ', '_')}_s": round(self.seconds.get(p, 0.0), 3)
                                       for p in (*PHASES, "other")}
        total = sum(self.seconds.values())
        out["time_total_s"] = round(total, 3)
        out["tokens"] = self.tokens
        gen_s = self.seconds.get("generate", 0.0)
        out["tokens_per_s"] = round(self.tokens / gen_s, 1) if gen_s > 0 else 0.0
        out.update(self.counts)
        self.seconds, self.tokens = {}, 0
        self.counts = dict.fromkeys(self.counts, 0)
        return out
