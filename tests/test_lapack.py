"""Top-k eigenpairs from LAPACK (the SVD mutation's decomposition), against NumPy's full eigh."""

import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from acdc_engine.plugins.merge.lapack import top_eigh


def gram(n: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n + 7, n))
    return a.T @ a


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-6), (np.float64, 1e-13)])
@pytest.mark.parametrize("n, k", [(1, 1), (30, 1), (30, 12), (30, 30), (200, 90)])
def test_top_eigenpairs_match_a_full_eigendecomposition(n, k, dtype, tol):
    g = gram(n, seed=n + k)
    values, vectors = top_eigh(np.asfortranarray(g.astype(dtype)), k)
    exact = np.linalg.eigvalsh(g)[::-1][:k]
    scale = exact[0]
    assert values.dtype == dtype and vectors.shape == (k, n) and vectors.flags.c_contiguous
    assert np.all(np.diff(values) <= 0)
    np.testing.assert_allclose(values, exact, rtol=0, atol=tol * scale)
    assert np.abs(g @ vectors.T - vectors.T * values).max() <= 10 * tol * scale  # g v = lambda v
    assert np.abs(vectors @ vectors.T - np.eye(k)).max() <= 10 * tol * n


def test_only_the_lower_triangle_is_read():
    g = gram(40, seed=1)
    garbage = np.asfortranarray(np.tril(g) + np.triu(np.full_like(g, 1e6), 1))
    values, _ = top_eigh(garbage, 5)
    np.testing.assert_allclose(values, np.linalg.eigvalsh(g)[::-1][:5], rtol=1e-12)


@pytest.mark.parametrize("matrix, k", [(np.zeros((4, 4), order="F"), 0), (np.zeros((4, 4), order="F"), 5),
                                       (np.zeros((4, 5), order="F"), 2), (np.zeros((8, 8), order="F")[::2, ::2], 2),
                                       (np.zeros((4, 4), order="C"), 2)])
def test_bad_input_is_refused_in_one_line(matrix, k):
    with pytest.raises(ValueError, match="top_eigh needs a Fortran-ordered square matrix"):
        top_eigh(matrix, k)


def test_a_failed_decomposition_raises_instead_of_returning_garbage():
    g = np.asfortranarray(gram(20, seed=2))
    g[3, 2] = np.nan
    with pytest.raises(RuntimeError, match="LAPACK d"):
        top_eigh(g, 4)


def test_the_gil_is_released_while_lapack_runs():
    """Another Python thread keeps running during a decomposition, so the mutation's worker
    threads decompose in parallel (SciPy's own wrappers block every other thread meanwhile)."""
    g = np.asfortranarray(gram(1200, seed=3))
    inside, done, ticks = threading.Event(), threading.Event(), []

    def decompose():
        inside.set()
        top_eigh(g, 1)
        done.set()

    with threadpool_limits(limits=1, user_api="blas"):  # leaves the other core to this thread
        worker = threading.Thread(target=decompose)
        worker.start()
        inside.wait()
        while not done.is_set():
            ticks.append(time.perf_counter())
        worker.join()
    longest_pause, took = float(np.diff(ticks).max()), ticks[-1] - ticks[0]
    assert longest_pause < took / 5, f"this thread stood still {longest_pause:.3f} s of {took:.3f} s"
