"""The linear discriminant both clip embeddings fit their scene directions with (the built-in
one in ``benchmarks.calibrate_embedding``, the learned one in :mod:`engine.scenes.learned`)."""

from __future__ import annotations

import numpy as np


def scene_discriminant(x: np.ndarray, labels: np.ndarray, dims: int, ridge: float) -> np.ndarray:
    """Directions ``float64[d, dims]`` that separate the ``labels`` of the rows of ``x``
    ``float[n, d]``: the generalised eigenvectors of the between-label over the within-label
    scatter (every row weighted alike), the within scatter ridged by ``ridge`` times its own
    diagonal, largest first, each scaled by the root of its eigenvalue over the first."""
    x = np.asarray(x, np.float64)
    labels = np.asarray(labels)
    mean = x.mean(axis=0)
    within = np.zeros((x.shape[1], x.shape[1]))
    between = np.zeros_like(within)
    for label in sorted(set(labels.tolist())):
        rows = x[labels == label]
        centre = rows.mean(axis=0)
        within += (rows - centre).T @ (rows - centre) / len(x)
        between += len(rows) / len(x) * np.outer(centre - mean, centre - mean)
    within += ridge * np.diag(np.diag(within)) + 1e-9 * np.trace(within) / len(within) * np.eye(len(within))
    inv_chol = np.linalg.inv(np.linalg.cholesky(within))
    values, vectors = np.linalg.eigh(inv_chol @ between @ inv_chol.T)
    values, vectors = values[::-1][:dims], vectors[:, ::-1][:, :dims]
    return inv_chol.T @ vectors * np.sqrt(np.maximum(values, 0.0) / max(values[0], 1e-12))[None]
