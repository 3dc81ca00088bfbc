"""What the live view costs: one render of a full 80 x 24 screen, and one progress event.

Usage: python benchmarks/view.py

The live display re-renders ``REFRESH_PER_S`` times a second on a thread of
its own; events (one per finished answer) only update counters under a lock.
Prints the render time, its share of one core at that rate, and the cost of
an ``advance`` event.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_view import feed  # noqa: E402  (the test's full screen: 12 archive rows, events, a time line)

from acdc_engine.events import Advanced  # noqa: E402
from acdc_engine.ui.live_view import REFRESH_PER_S, ProgressView  # noqa: E402


def main() -> None:
    view = ProgressView(Console(file=io.StringIO(), force_terminal=True, width=80, height=24))
    feed(view)
    screen = Console(file=io.StringIO(), force_terminal=True, width=80, height=24)
    renders = 200
    started = time.perf_counter()
    for _ in range(renders):
        screen.print(view._render())
    render_s = (time.perf_counter() - started) / renders
    events = 20000
    started = time.perf_counter()
    for _ in range(events):
        view.acdc_event(Advanced(n=1))
    event_s = (time.perf_counter() - started) / events
    print(f"render of a full screen: {render_s * 1e3:.2f} ms; at {REFRESH_PER_S} per second "
          f"{100 * render_s * REFRESH_PER_S:.2f} % of one core")
    print(f"advance event: {event_s * 1e6:.1f} us (one per finished answer)")


if __name__ == "__main__":
    main()
