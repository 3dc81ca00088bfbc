"""Built-in plugin ``merge``: crossover (merge) and mutation operators.

Every operator is a small function over one tensor, registered by name and
applied tensor by tensor by :mod:`acdc_engine.models.materialise`. ``parents`` is a
lazy sequence: each access maps that parent's tensor, so use each one and let
it go. Parameters that hold for the whole child are drawn once by
``draw_params`` and stored in its recipe.

Merges (``[evolution] crossover``), with task vectors ``tau_i = p_i - base``,
every one under its mergekit name and run by mergekit's own per-tensor code
(:mod:`acdc_engine.plugins.merge.mergekit_methods`), so a child has the weights
mergekit's ``run_merge`` gives for its recipe's parameters; their
parameters, and the mutations', are this plugin's own config section
``[merge]`` (:class:`MergeSection`), and every mergekit parameter is recorded
in the recipe (``normalize`` included):

- ``linear`` (the AC/DC default): ``sum_i w_i p_i / sum_i w_i`` with
  ``w_i ~ N(1, crossover_std)``: the weighted average of the parents (two
  parents: one fused ``lerp``).
- ``task_arithmetic``: ``base + lambda * sum_i w_i tau_i`` (no normalisation).
- ``slerp``: spherical interpolation of two parents at ``t ~ U(0.25, 0.75)``,
  over the whole tensor (mergekit's ``slerp``; the first parent is its base).
- ``ties``: trim each ``tau_i`` to its top ``merge_density`` magnitudes, elect
  a sign per entry, average the agreeing entries (``normalize`` on).
- ``dare_ties`` / ``dare_linear``: random drop with rescaling (DARE), then
  TIES sign consensus / a weighted sum (mergekit's default ``normalize =
  false``: not divided by the weights' sum).
- ``breadcrumbs``: drop the largest and smallest magnitudes, then a weighted
  sum (``normalize = false``, as in mergekit).
- every other method of mergekit's registry by its mergekit name (``della``,
  ``model_stock``, ``nuslerp``, ``karcher``, ...).

Mutations (``[evolution] mutation``): ``svd`` (the AC/DC default) perturbs
the top ``keep_rank`` singular values of each 2-D weight matrix except norms
(embeddings included, as in the reference code; ``keep_rank`` above the rank
is clamped; a tied embedding is one tensor and is mutated once): with
``mutation_scale = "relative"`` each value ``s`` becomes ``s (1 + e)``,
``e ~ N(0, mutation_std)``, so every matrix changes by about the same share
of its norm; with ``"absolute"`` (the reference code's rule, tuned on 7B
models) ``s + e``, which on a small model's small singular values is a large
relative change. ``gaussian`` adds N(0, ``mutation_std``) elementwise.

The SVD mutation needs only the top-k singular pairs. They come from the
top-k eigenpairs (:func:`acdc_engine.plugins.merge.lapack.top_eigh`: LAPACK without
the GIL, only k eigenvectors carried back) of the Gram matrix of the smaller
side, accumulated in row chunks, with NumPy's BLAS doing the products: in
float32 while the kept values are the upper half of the spectrum
and spread little (on SmolLM2, relative error below 2e-6), in float64 when
``keep_rank`` reaches into the lower half or the kept eigenvalues spread over
more than ``FLOAT32_SPREAD``, where float32 would lose accuracy (see
``benchmarks/operators.py`` for speed and accuracy against a full SVD). With
``W V_k = U_k S_k`` the update ``U_k diag(d) V_k^T`` equals
``W V_k diag(d / s_k) V_k^T = W M``, applied in place chunk by chunk, so no
copy of a large matrix is ever made. Directions with a singular value below
``1e-8 * s_max`` are left alone.
"""

from __future__ import annotations

import numpy as np
import torch

from typing import Literal

from pydantic import Field

from acdc_engine.api import MergeMethod, MutationMethod, PluginSection, hookimpl
from .lapack import top_eigh
from .mergekit_methods import merge_plugin_methods, mergekit_merge_methods

CHUNK_ROWS = 4096
#: Largest lambda_1 / lambda_k trusted to float32 eigh: SmolLM2's matrices below it keep
#: relative errors under 2e-6 (149 of 151 wide matrices); its embedding (605) and first
#: query matrix (2792) reach 1e-4 in float32 (benchmarks/operators.py).
FLOAT32_SPREAD = 200.0


class MergeSection(PluginSection):
    """Parameters of the merge plugin's operators, drawn into each child's recipe."""

    #: Once keys of [evolution]: a user's config that still sets one is refused, naming its new place; a run
    #: stored before the move reads (and resumes) with them moved here.
    renamed = {f"evolution.{key}": key for key in
               ("crossover_std", "merge_density", "mutation_std", "mutation_scale", "keep_rank")}
    refuse_renamed = True

    crossover_std: float = Field(0.01, ge=0, description="Std of the merge weights drawn around 1.")
    merge_density: float = Field(0.5, gt=0, le=1, description="Share of task-vector entries kept by the "
                                 "sparsifying merges (ties, dare, breadcrumbs, della).")
    mutation_std: float = Field(0.05, ge=0, description="Std of the noise added by the mutation.")
    mutation_scale: Literal["relative", "absolute"] = Field(
        "relative", description="SVD mutation: noise on each singular value scaled by the value ('relative') or "
        "not ('absolute', the reference code's rule for 7B models).")
    keep_rank: int = Field(256, ge=1, description="Top singular values perturbed by the SVD mutation.")


@hookimpl
def acdc_config_sections():
    return {"merge": MergeSection}


# --- mutations ----------------------------------------------------------------


def is_mutable_matrix(name: str, tensor: torch.Tensor) -> bool:
    """2-D weight matrices other than norms (the reference code's rule)."""
    return tensor.ndim == 2 and "norm" not in name


def _numpy(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """``t`` as a NumPy array of ``dtype``, sharing its memory where no cast is needed."""
    return t.detach().to(dtype).contiguous().numpy()


def _gram(w: torch.Tensor, right: bool, dtype: torch.dtype) -> np.ndarray:
    """Gram matrix of the smaller side of ``w`` in ``dtype``, accumulated in row chunks."""
    if not right:
        a = _numpy(w, dtype)
        return a @ a.T
    chunks = (_numpy(w[start : start + CHUNK_ROWS], dtype) for start in range(0, w.shape[0], CHUNK_ROWS))
    return sum(chunk.T @ chunk for chunk in chunks)


def top_singular(w: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Top-k singular values (descending) of ``w`` and the matching singular
    vectors of its smaller side: right (n x k) if ``right``, else left (m x k).

    Float32 serves while the top k are at most half the smaller side (and ``w``
    is not float64); otherwise the Gram matrix and its eigendecomposition are
    float64. A float32 decomposition whose kept eigenvalues spread over more
    than ``FLOAT32_SPREAD`` (its error grows with the spread) is redone in
    float64 from the same Gram matrix.
    """
    right = w.shape[0] >= w.shape[1]
    side = min(w.shape)
    dtype = torch.float32 if 2 * k <= side and w.dtype != torch.float64 else torch.float64
    gram = _gram(w, right, dtype)  # symmetric: its transpose is the Fortran-ordered matrix top_eigh reads
    evals, vecs = top_eigh(gram.T.copy(order="F"), k)
    if dtype == torch.float32 and evals[0] > FLOAT32_SPREAD * evals[-1]:
        evals, vecs = top_eigh(gram.T.astype(np.float64, order="F"), k)
    return torch.from_numpy(np.sqrt(evals.clip(min=0))), torch.from_numpy(vecs.T), right


def svd_noise_mutation(name, tensor, params, generator):
    """Adds N(0, std) to the top-k singular values of ``tensor`` (clamped at 0), in place; with
    ``params["relative"]`` the noise of each value is scaled by the value itself."""
    k = min(int(params["keep_rank"]), *tensor.shape)
    s, vecs, right = top_singular(tensor, k)
    noise = torch.randn(k, generator=generator, dtype=torch.float64) * float(params["std"])
    s64 = s.to(torch.float64)
    if params.get("relative"):
        noise *= s64
    new_s = (s64 + noise).clamp_min(0)
    scale = torch.where(s64 > 1e-8 * s64[0], (new_s - s64) / s64.clamp_min(1e-300), torch.zeros_like(s64))
    work = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    v = _numpy(vecs, work)
    update = (v * _numpy(scale, work)) @ v.T  # M: W' = W + W M (right) or W + M W (left)
    if right:
        for start in range(0, tensor.shape[0], CHUNK_ROWS):
            _add_product(tensor[start : start + CHUNK_ROWS], update, work, right=True)
    else:
        _add_product(tensor, update, work, right=False)
    return tensor


def _add_product(rows: torch.Tensor, update: np.ndarray, work: torch.dtype, right: bool) -> None:
    """``rows += rows @ update`` (``right``) or ``update @ rows``, computed in ``work``, in place."""
    a = _numpy(rows, work)  # rows' own memory when no cast is needed
    a += a @ update if right else update @ a
    if a.ctypes.data != rows.data_ptr():
        rows.copy_(torch.from_numpy(a))


def gaussian_mutation(name, tensor, params, generator):
    """Adds N(0, std) elementwise, in place."""
    noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * float(params["std"])
    return tensor.add_(noise.to(tensor.dtype))


def _draw_svd(rng, config):
    section = config.merge
    params = {"std": section.mutation_std, "keep_rank": section.keep_rank}
    return params | {"relative": True} if section.mutation_scale == "relative" else params


@hookimpl
def acdc_merge_methods():
    # every one by its mergekit name, run by mergekit's per-tensor code (linear's two-parent case: one lerp)
    return {**merge_plugin_methods(), **mergekit_merge_methods()}


@hookimpl
def acdc_mutation_methods():
    return {
        "svd": MutationMethod(
            "svd",
            svd_noise_mutation,
            _draw_svd,
            is_mutable_matrix,
        ),
        "gaussian": MutationMethod(
            "gaussian", gaussian_mutation, lambda rng, config: {"std": config.merge.mutation_std}, is_mutable_matrix
        ),
    }
