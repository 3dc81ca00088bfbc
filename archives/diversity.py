"""Diversity of a set of items from their embeddings: the Vendi score."""

from __future__ import annotations

import numpy as np


def vendi_score(embeddings: np.ndarray) -> float:
    """exp of the Shannon entropy of the eigenvalues of K/n, K the cosine-similarity matrix.

    Between 1 (all items alike) and n (all orthogonal): the effective number
    of distinct items (Friedman and Dieng, 2023). 0 for an empty set.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) == 0:
        return 0.0
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    eig = np.linalg.eigvalsh(x @ x.T / len(x))
    eig = eig[eig > 1e-12]
    return float(np.exp(-np.sum(eig * np.log(eig))))
