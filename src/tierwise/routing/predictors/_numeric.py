"""Small numeric helpers shared by the trained predictors: standardisation, masked BCE, Adam."""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))  # tanh form: no overflow warnings


def standardizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales (1 where a column is constant)."""
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    return mean, np.where(std > 1e-8, std, 1.0)


def masked_targets(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(targets with NaN → 0, mask of observed cells as float)."""
    mask = ~np.isnan(scores)
    return np.where(mask, scores, 0.0), mask.astype(np.float64)


class Adam:
    """Adam over a dict of named parameter arrays (updated in place)."""

    def __init__(self, params: dict[str, np.ndarray], *, lr: float = 1e-2) -> None:
        self.params = params
        self.lr = lr
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat = self.m[k] / (1 - b1**self.t)
            v_hat = self.v[k] / (1 - b2**self.t)
            self.params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]
