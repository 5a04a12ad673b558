"""Synthetic outcome tables with a planted signal, for predictor and calibration tests."""

from __future__ import annotations

import numpy as np


def planted_table(n: int = 600, d: int = 16, m: int = 3, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features X (n, d) and 0/1 outcomes (n, m) where model j is right with P = sigmoid(3·x·w_j + b_j).

    Model quality depends on the query (via random directions w_j), so a predictor that learns the signal
    ranks (query, model) pairs well above chance. About 10 % of cells are missing (NaN).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W = rng.normal(size=(d, m))
    logits = 3.0 * np.sqrt(d) * (X @ W) / np.linalg.norm(W, axis=0) + np.linspace(-0.5, 0.5, m)
    p = 1.0 / (1.0 + np.exp(-logits))
    y = (rng.random((n, m)) < p).astype(np.float64)
    y[rng.random((n, m)) < 0.1] = np.nan
    return X, y
