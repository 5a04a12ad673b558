"""Logistic regression per model on standardised features (L2-regularised, fitted by Newton's method)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from tierwise.routing.predictors._numeric import sigmoid, standardizer
from tierwise.routing.predictors.base import Predictor


def _fit_logistic(X: np.ndarray, y: np.ndarray, *, l2: float, iters: int) -> np.ndarray:
    """Weights (d + 1, bias last) minimising mean log loss + l2/2·|w|² / n (bias not penalised)."""
    n, d = X.shape
    Xb = np.hstack([X, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = sigmoid(Xb @ w)
        grad = Xb.T @ (p - y) + reg * w
        hess = (Xb * (p * (1 - p))[:, None]).T @ Xb + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


class LogisticPredictor(Predictor):
    """One L2-regularised logistic regression per model; targets in [0, 1] (soft labels allowed)."""

    name: ClassVar[str] = "logistic"

    def __init__(self, *, l2: float = 10.0, iters: int = 25) -> None:
        self.l2 = l2
        self.iters = iters
        self._mean = np.zeros(0)
        self._std = np.ones(0)
        self._W = np.zeros((0, 0))  # (d + 1, m)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"l2": self.l2, "iters": self.iters}

    def fit(self, X: np.ndarray, scores: np.ndarray, *, categories: Sequence[str] | None = None) -> Self:
        X = np.asarray(X, dtype=np.float64)
        self._mean, self._std = standardizer(X)
        Z = (X - self._mean) / self._std
        cols = []
        for j in range(scores.shape[1]):
            seen = ~np.isnan(scores[:, j])
            if not seen.any():
                cols.append(np.zeros(Z.shape[1] + 1))
                continue
            cols.append(_fit_logistic(Z[seen], scores[seen, j], l2=self.l2, iters=self.iters))
        self._W = np.stack(cols, axis=1)
        return self

    def predict(self, X: np.ndarray, *, categories: Sequence[str] | None = None) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self._mean) / self._std
        return sigmoid(Z @ self._W[:-1] + self._W[-1])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self._mean, "std": self._std, "W": self._W}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._mean, self._std, self._W = (np.asarray(arrays[k], dtype=np.float64) for k in ("mean", "std", "W"))
