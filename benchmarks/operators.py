"""Model operators on SmolLM2-135M: merge throughput, materialisation memory,
and the truncated SVD mutation against a full SVD.

    .venv/bin/python benchmarks/operators.py

Prints figures and ratios measured in this one run (timings drift between
runs and machines; compare the ratios). Uses the converted seed in the cache
(run the default job or the tests once first) and makes a second parent.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from acdc_engine.models.checkpoint import CheckpointReader
from acdc_engine.models.materialise import materialise, mutation_pool
from acdc_engine.plugins.merge.merge_plugin import acdc_merge_methods, acdc_mutation_methods, is_mutable_matrix, top_singular
from acdc_engine.plugins.seed_models.smollm2 import acdc_resolve_seed
from acdc_engine.recipe import Recipe

CACHE = Path("~/.cache/acdc-engine").expanduser()
LINEAR = acdc_merge_methods()["linear"]
SVD = acdc_mutation_methods()["svd"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(n, fn):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def memcpy_bandwidth() -> float:
    src = np.ones(1 << 27)  # 1 GiB of float64
    dst = np.empty_like(src)
    return src.nbytes / best_of(3, lambda: np.copyto(dst, src)) / 1e9


def recipe(mutate: bool) -> Recipe:
    return Recipe.make(parents=("a", "b"), crossover="linear", crossover_params={"weights": [1.0, 1.02]},
                       mutation="svd" if mutate else None,
                       mutation_params={"std": 0.25, "keep_rank": 256} if mutate else None, seed=1)


def second_parent(seed_file: Path) -> Path:
    out = CACHE / "bench-parent-b.safetensors"
    if not out.exists():
        materialise(recipe(True), parent_files=[seed_file, seed_file], base_file=seed_file, merge=LINEAR,
                    mutation=SVD, out_file=out)
    return out


def merge_throughput(seed_dir: Path, a: Path, b: Path, mem_bw: float) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(seed_dir, dtype=torch.float32)
    resident = dict(model.state_dict())
    read_bytes = a.stat().st_size + b.stat().st_size
    for f in (a, b):  # page cache warm for both implementations
        f.read_bytes()
    streaming = best_of(3, lambda: materialise(recipe(False), parent_files=[a, b], base_file=a, merge=LINEAR,
                                                mutation=None, into=resident))

    def full_state_dict():
        pa, pb, base = load_file(a), load_file(b), load_file(a)
        w = [1.0, 1.02]
        merged = {k: base[k] + (w[0] * (pa[k] - base[k]) + w[1] * (pb[k] - base[k])) / sum(w) for k in base}
        model.load_state_dict(merged, strict=False)

    full = best_of(3, full_state_dict)
    gbps = read_bytes / streaming / 1e9
    print(f"merge into resident model: {streaming:.3f} s, {gbps:.2f} GB/s of parameters read")
    print(f"  = {gbps / mem_bw:.0%} of memory-copy bandwidth ({mem_bw:.1f} GB/s)  [target >= 30 %]")
    print(f"  full-state-dict merge: {full:.3f} s -> streaming is {full / streaming:.1f}x faster")


def peak_rss(a: Path, b: Path) -> None:
    """Peak RSS of a fresh process (VmHWM: ru_maxrss would carry this process's peak over exec)."""
    code = (
        "import sys; from pathlib import Path\n"
        "from acdc_engine.models.materialise import materialise\n"
        "from acdc_engine.plugins.merge.merge_plugin import acdc_merge_methods, acdc_mutation_methods\n"
        "from acdc_engine.recipe import Recipe\n"
        "r = Recipe.make(parents=('a','b'), crossover='linear', crossover_params={'weights': [1.0, 1.02]},"
        " mutation='svd', mutation_params={'std': 0.25, 'keep_rank': 256}, seed=2)\n"
        "a, b, out = map(Path, sys.argv[1:4])\n"
        "materialise(r, parent_files=[a, b], base_file=a, merge=acdc_merge_methods()['linear'],"
        " mutation=acdc_mutation_methods()['svd'], out_file=out)\n"
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) * 1024)\n"
    )
    out = CACHE / "bench-child.safetensors"
    start = time.perf_counter()
    rss = int(subprocess.run([sys.executable, "-c", code, str(a), str(b), str(out)], check=True,
                             capture_output=True, text=True).stdout.split()[-1])
    took = time.perf_counter() - start
    size = a.stat().st_size
    print(f"materialise 2-parent merge + SVD mutation to a file: {took:.1f} s, peak RSS {rss / 2**20:.0f} MiB "
          f"= {rss / size:.2f}x the model file ({size / 2**20:.0f} MiB)  [target <= 1.2x]")
    out.unlink(missing_ok=True)


def reference_mutation(w: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """The reference code's SVD mutation: a full SVD, noise on the top k values, U diag(s) V^T."""
    u, s, vt = torch.linalg.svd(w, full_matrices=False)
    s[:k] = (s[:k] + torch.randn(k, generator=gen) * 0.25).clamp_min(0)
    return (u * s) @ vt


def svd_mutation(a: Path) -> None:
    """Full SVD of every matrix (the reference) against our top-k method: alone, on one thread,
    and as the whole mutation (decomposition + update) runs in materialise."""
    with CheckpointReader(a) as ckpt:
        matrices = {n: ckpt.tensor(n).clone() for n in ckpt.keys() if is_mutable_matrix(n, ckpt.tensor(n))}
    threads = torch.get_num_threads()

    def decompositions(one_thread: bool) -> tuple[float, float]:
        """Seconds of full SVDs and of top-k pairs over all matrices (each method in a loop of its own:
        interleaved, OpenBLAS's and OpenMP's idle threads spin against each other on 2 cores)."""
        torch.set_num_threads(1 if one_thread else threads)
        with threadpool_limits(limits=1 if one_thread else None, user_api="blas"):
            full = timed(lambda: [torch.linalg.svd(w, full_matrices=False) for w in matrices.values()])
            ours = timed(lambda: [top_singular(w, min(256, *w.shape)) for w in matrices.values()])
        torch.set_num_threads(threads)
        return full, ours

    worst = 0.0
    for w in matrices.values():
        k = min(256, *w.shape)
        exact = torch.linalg.svdvals(w.to(torch.float64))[:k]
        worst = max(worst, float(((top_singular(w, k)[0] - exact).abs() / exact).max()))
    full, ours = decompositions(one_thread=False)
    full1, ours1 = decompositions(one_thread=True)
    params = {"std": 0.25, "keep_rank": 256}
    reference = timed(lambda: [reference_mutation(w, min(256, *w.shape), torch.Generator().manual_seed(0))
                               for w in matrices.values()])

    def pooled(fn) -> float:
        """Seconds of ``fn(name, matrix)`` over all matrices on materialise's worker threads, largest first."""
        with mutation_pool() as (pool, _):
            return timed(lambda: list(pool.map(lambda item: fn(*item), sorted(matrices.items(),
                                                                            key=lambda item: -item[1].numel()))))

    topk_pooled = pooled(lambda name, w: top_singular(w, min(256, *w.shape)))
    ours_pooled = pooled(lambda name, w: SVD.mutate(name, w, params, torch.Generator().manual_seed(0)))
    print(f"SVD mutation over {len(matrices)} matrices (keep_rank 256), each method timed alone:")
    print(f"  full SVD (torch.linalg.svd, as the reference), one matrix after another on {threads} threads: "
          f"{full:.2f} s")
    print(f"  top-k pairs on {threads} worker threads, as materialise runs them: {topk_pooled:.2f} s "
          f"-> {full / topk_pooled:.1f}x faster  [target >= 5x]")
    print(f"  top-k pairs, one matrix after another on {threads} threads: {ours:.2f} s -> {full / ours:.1f}x faster")
    print(f"  on one thread each (CPU time): full SVD {full1:.2f} s, top-k pairs {ours1:.2f} s "
          f"-> {full1 / ours1:.1f}x faster")
    print(f"  whole mutation (decomposition, noise, update): reference (full SVD, U diag(s) V^T) {reference:.2f} s, "
          f"ours on {threads} worker threads {ours_pooled:.2f} s -> {reference / ours_pooled:.1f}x faster")
    print(f"  max relative error of the kept singular values (vs float64 SVD): {worst:.1e}  [target <= 1e-4]")


def main() -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    seed_dir = acdc_resolve_seed(spec="smollm2", cache_dir=CACHE)
    a = seed_dir / "model.safetensors"
    b = second_parent(a)
    mem_bw = memcpy_bandwidth()
    print(f"machine: {torch.get_num_threads()} threads; memory-copy bandwidth {mem_bw:.1f} GB/s")
    merge_throughput(seed_dir, a, b, mem_bw)
    peak_rss(a, b)
    svd_mutation(a)
    print(f"(this process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
