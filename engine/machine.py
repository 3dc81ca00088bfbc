"""What this machine computes fastest: a short probe of matmul speed per dtype, cached per machine.

``generation.dtype = "auto"`` (the default) becomes the dtype whose matmuls ran
faster here when the config is validated: ``bfloat16`` on a CPU with bf16
matrix units (AMX, where it runs several times float32), ``float32`` where
bf16 is emulated and slower (73 against 127 GFLOP/s measured on a CPU without
AMX). The probe takes about a second on one thread; its result is kept in
``<models.cache_dir>/machine.json`` under a key of the CPU and the torch
version, so a machine probes once. A run stores the resolved dtype in its
config, so a resume answers as the run did.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

#: The dtypes the probe chooses between, the default's first (it wins a tie).
CANDIDATES = ("bfloat16", "float32")
PROBE_FILE = "machine.json"
#: A decode step's matmul: 128 rows (a batch of answers) through a small model's MLP projection. At 32 rows
#: bf16 ran slower than float32 even with AMX (15 against 42 GFLOP/s); from 128 rows it ran 2.3x faster,
#: as the transformers backend does at 36-400 prompts (docs/performance.md).
PROBE_SHAPE = (128, 576, 1536)

_chosen: dict[str, str] = {}  # by machine key: probed or read once per process


def machine_key() -> str:
    """The CPU (model and feature flags) and the torch version, hashed: what the probe's answer depends on."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))]
        cpu = "".join(dict.fromkeys(lines))  # the first core's lines; every core has the same
    except OSError:
        pass
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    return hashlib.sha256(f"{platform.machine()}\n{cpu}\ntorch {torch_version}".encode()).hexdigest()[:16]


def matmul_flops(m: int, k: int, n: int, dtype, seconds: float = 1.0) -> float:
    """Measured FLOP/s of an (m x k) @ (k x n) matmul in ``dtype`` (a torch dtype), over ``seconds``."""
    import torch

    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b  # warm-up
    reps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        reps += 1
    return 2 * m * k * n * reps / (time.perf_counter() - started)


def faster(flops: dict[str, float]) -> str:
    """The dtype of ``flops`` (FLOP/s by dtype name) that ran fastest; the first of :data:`CANDIDATES`
    on a tie."""
    return max(CANDIDATES, key=lambda d: (flops[d], -CANDIDATES.index(d)))


def probe(rounds: int = 5, seconds: float = 0.08) -> dict[str, float]:
    """FLOP/s of :data:`PROBE_SHAPE` in each candidate dtype, measured now: on one thread, the dtypes taking
    turns for ``rounds`` short windows, the best window of each kept. Busy cores only ever slow a window,
    so the best one is what the CPU can do; two threads on two shared cores measured 31 against 28 GFLOP/s
    where one thread measured 586 against 157."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = dict.fromkeys(CANDIDATES, 0.0)
        for _ in range(rounds):
            for name in CANDIDATES:
                best[name] = max(best[name], matmul_flops(*PROBE_SHAPE, getattr(torch, name), seconds))
        return best
    finally:
        torch.set_num_threads(threads)


def _read(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: Path, entries: dict) -> None:
    """Keeps ``entries`` in ``path`` atomically, if its folder exists (validating a config creates no cache
    folder: a run that stops at once leaves nothing behind); a folder that is missing or cannot be written
    only means the next process probes again."""
    if not path.parent.is_dir():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(entries, indent=1))
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:  # never made, or its folder cannot be reached
            pass


def machine_dtype(cache_dir: str | Path) -> str:
    """The dtype this machine answers fastest in: from this process's memory, else from ``cache_dir``'s
    probe file, else probed now and kept there."""
    key = machine_key()
    if key in _chosen:
        return _chosen[key]
    path = Path(cache_dir).expanduser() / PROBE_FILE
    entries = _read(path)
    entry = entries.get(key)
    if not (isinstance(entry, dict) and entry.get("dtype") in CANDIDATES):
        flops = probe()
        entry = {"dtype": faster(flops), "gflops": {d: round(f / 1e9, 1) for d, f in flops.items()},
                 "shape": list(PROBE_SHAPE), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        _write(path, entries | {key: entry})
    _chosen[key] = entry["dtype"]
    return entry["dtype"]
