"""The top-k eigenpairs of a symmetric matrix from LAPACK, without the GIL.

The SVD mutation needs the top ``k`` eigenpairs of many 576 x 576 Gram
matrices. ``torch.linalg.eigh`` (and NumPy's) compute every eigenvector with
``syevd``; here LAPACK's steps run one by one so that only what is needed is
computed: the blocked tridiagonal reduction (``sytrd``), divide-and-conquer
on the tridiagonal matrix (``stedc``: on SmolLM2's spectra the fastest
tridiagonal solver here, MRRR and inverse iteration for only ``k`` vectors
were 2-3x slower) and the back-transformation of just the ``k`` wanted
vectors (``ormtr``). Figures: ``benchmarks/operators.py``.

The routines are SciPy's LAPACK, taken from ``scipy.linalg.cython_lapack``
(the C entry points SciPy publishes for compiled callers; Numba uses them the
same way) and called through ctypes, which releases the GIL during each call,
so worker threads decompose matrices in parallel. SciPy's Python-level
wrappers (``scipy.linalg.lapack``) hold the GIL.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np
import scipy.linalg.cython_lapack

_ARGS = {"sytrd": 10, "stedc": 11, "ormtr": 13}  # routine -> number of arguments
_PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}


@cache
def _routine(name: str):
    """A LAPACK routine as a ctypes function of pointers (the GIL is released while it runs)."""
    capsule = scipy.linalg.cython_lapack.__pyx_capi__[name]
    get_name, get_pointer = ctypes.pythonapi.PyCapsule_GetName, ctypes.pythonapi.PyCapsule_GetPointer
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * _ARGS[name[1:]])(get_pointer(capsule, get_name(capsule)))


def _call(name: str, *args) -> None:
    """Calls a routine, Fortran style: every argument by address (bytes: a character)."""
    arrays = [a if isinstance(a, bytes) else _array(a) for a in args]  # referenced until the call returns
    _routine(name)(*[ctypes.c_char_p(a) if isinstance(a, bytes) else a.ctypes.data for a in arrays])


def _array(value: np.ndarray | int) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.array([value], dtype=np.int32)


def _lapack(name: str, *args) -> None:
    """Calls a LAPACK routine whose last argument is ``info``; a failure raises."""
    info = np.zeros(1, np.int32)
    _call(name, *args, info)
    if info[0] != 0:
        raise RuntimeError(f"LAPACK {name} failed with info={int(info[0])}")


def top_eigh(gram: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues of the symmetric ``gram`` (descending) and their
    eigenvectors as the rows of a C-ordered k x n array.

    ``gram``: Fortran-ordered float32 or float64, lower triangle read; it is overwritten.
    """
    n = gram.shape[0]
    if gram.shape != (n, n) or not gram.flags.f_contiguous or not 1 <= k <= n:
        raise ValueError(f"top_eigh needs a Fortran-ordered square matrix and 1 <= k <= n, got {gram.shape}, k={k}")
    dtype, p = gram.dtype, _PREFIX[gram.dtype]
    d, e, tau = np.empty(n, dtype), np.empty(n, dtype), np.empty(max(n - 1, 1), dtype)
    # sytrd: gram = Q T Q^T, with T = tridiag(e, d, e) and Q's reflectors left in gram's lower triangle.
    work = np.empty(64 * n, dtype)
    _lapack(p + "sytrd", b"L", n, gram, n, d, e, tau, work, work.size)
    # stedc: every eigenpair of T, ascending; the eigenvectors are the columns of z.
    z = np.empty((n, n), dtype, order="F")
    work, iwork = np.empty(1 + 4 * n + n * n, dtype), np.empty(3 + 5 * n, np.int32)
    _lapack(p + "stedc", b"I", n, d, e, z, n, work, work.size, iwork, iwork.size)
    # ormtr: gram's eigenvectors are Q times T's; only the top k are carried back.
    top = np.asfortranarray(z[:, n - k :])
    work = np.empty(64 * max(k, 1), dtype)
    _lapack(p + "ormtr", b"L", b"L", b"N", n, k, gram, n, tau, top, n, work, work.size)
    return d[n - k :][::-1].copy(), np.ascontiguousarray(top.T[::-1])
