"""Built-in plugin ``merge``: task-vector crossover and singular-value mutation.

Crossover ``linear`` (the AC/DC default): with task vectors
``tau_i = theta_i - theta_base``, the child is
``theta_base + sum_i w_i tau_i / sum_i w_i`` with weights ``w_i ~ N(1, std)``
drawn once per child (``[evolution] crossover_std``).

Mutation ``svd`` (the AC/DC default): Gaussian noise with std
``[evolution] mutation_std`` on the top ``keep_rank`` singular values of every
2-D weight matrix except norms, clamped at zero. ``keep_rank`` above a
matrix's rank is clamped to the rank. Embeddings are mutated (as in the
reference code); 1-D tensors (norms, biases) are not. A tied embedding is one
tensor in the checkpoint and is mutated once.

Instead of a full SVD, the top singular pairs come from an eigendecomposition
of the float64 Gram matrix of the smaller side: with ``W V_k = U_k S_k``, the
update ``U_k diag(d) V_k^T`` equals ``W V_k diag(d / s_k) V_k^T``. Directions
whose singular value is below ``1e-8 * s_max`` are left alone.

Mutation ``gaussian``: ``W + N(0, mutation_std)`` on the same tensors.
"""

from __future__ import annotations

import torch

from acdc_engine.hookspecs import hookimpl
from acdc_engine.operators import MergeMethod, MutationMethod


def linear_task_vector_merge(name, parents, base, params):
    """``base + sum_i w_i (p_i - base) / sum_i w_i``, computed in float32."""
    weights = params["weights"]
    total = float(sum(weights))
    acc = torch.zeros_like(base, dtype=torch.float32)
    for w, p in zip(weights, parents):
        acc.add_(p.to(torch.float32) - base.to(torch.float32), alpha=w / total)
    return (base.to(torch.float32) + acc).to(base.dtype)


def _draw_merge_weights(n_parents, rng, evo):
    return {"weights": [float(w) for w in rng.normal(1.0, evo.crossover_std, size=n_parents)]}


def is_mutable_matrix(name: str, tensor: torch.Tensor) -> bool:
    """2-D weight matrices other than norms (the reference code's rule)."""
    return tensor.ndim == 2 and "norm" not in name


def top_singular(w: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Top-k singular values (descending) and the matching right (or left)
    singular vectors of ``w`` from the float64 Gram matrix of its smaller side.

    Returns ``(s, vecs, right)``: right singular vectors (n x k) if ``right``,
    else left ones (m x k).
    """
    a = w.to(torch.float64)
    right = a.shape[0] >= a.shape[1]
    gram = a.T @ a if right else a @ a.T
    evals, evecs = torch.linalg.eigh(gram)
    evals, evecs = evals.flip(0)[:k], evecs.flip(1)[:, :k]
    return evals.clamp_min(0).sqrt(), evecs, right


def svd_noise_mutation(name, tensor, params, generator):
    """Adds N(0, std) to the top-k singular values of ``tensor``, clamped at 0."""
    k = min(int(params["keep_rank"]), *tensor.shape)
    s, vecs, right = top_singular(tensor, k)
    noise = torch.randn(k, generator=generator, dtype=torch.float64) * float(params["std"])
    new_s = (s + noise).clamp_min(0)
    scale = torch.where(s > 1e-8 * s[0], (new_s - s) / s.clamp_min(1e-300), torch.zeros_like(s))
    a = tensor.to(torch.float64)
    delta = (a @ vecs) * scale @ vecs.T if right else vecs @ ((vecs.T @ a) * scale[:, None])
    return (a + delta).to(tensor.dtype)


def gaussian_mutation(name, tensor, params, generator):
    """Adds N(0, std) elementwise."""
    noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * float(params["std"])
    return (tensor.to(torch.float32) + noise).to(tensor.dtype)


@hookimpl
def acdc_merge_methods():
    return {"linear": MergeMethod("linear", linear_task_vector_merge, _draw_merge_weights)}


@hookimpl
def acdc_mutation_methods():
    return {
        "svd": MutationMethod(
            "svd",
            svd_noise_mutation,
            lambda rng, evo: {"std": evo.mutation_std, "keep_rank": evo.keep_rank},
            is_mutable_matrix,
        ),
        "gaussian": MutationMethod(
            "gaussian", gaussian_mutation, lambda rng, evo: {"std": evo.mutation_std}, is_mutable_matrix
        ),
    }
