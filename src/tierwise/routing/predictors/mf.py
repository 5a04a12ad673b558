"""Matrix factorisation in RouteLLM's style, pointwise: logit(q, m) = cᵀ(v_m ⊙ W·x_q) + b_m.

RouteLLM's MF router projects the query embedding (W, no bias), multiplies it elementwise with a learned
model embedding v_m and reads a score with a shared linear head c; it is trained on pairwise wins of two
models. Here each (query, model) outcome is its own target (masked log loss): any number of models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from tierwise.routing.predictors._numeric import Adam, masked_targets, minibatches, sigmoid, standardizer
from tierwise.routing.predictors.base import Predictor


class MatrixFactorizationPredictor(Predictor):
    """Bilinear query × model scorer with `dim` latent factors (RouteLLM's MF, one target per cell)."""

    name: ClassVar[str] = "mf"

    def __init__(self, *, dim: int = 32, l2: float = 1e-3, epochs: int = 20, lr: float = 3e-3, seed: int = 0) -> None:
        self.dim = dim
        self.l2 = l2
        self.epochs = epochs
        self.lr = lr
        self.seed = seed
        self._p: dict[str, np.ndarray] = {}

    def hyper_parameters(self) -> dict[str, Any]:
        return {"dim": self.dim, "l2": self.l2, "epochs": self.epochs, "lr": self.lr, "seed": self.seed}

    def fit(self, X: np.ndarray, scores: np.ndarray, *, categories: Sequence[str] | None = None) -> Self:
        rng = np.random.default_rng(self.seed)
        X = np.asarray(X, dtype=np.float64)
        mean, std = standardizer(X)
        Z = (X - mean) / std
        Y, M = masked_targets(np.asarray(scores, dtype=np.float64))
        d, m = Z.shape[1], Y.shape[1]
        prior = np.clip((Y * M).sum(0) / np.maximum(M.sum(0), 1), 0.02, 0.98)
        p = {
            "W": rng.normal(0, 1.0 / np.sqrt(d), (d, self.dim)),
            "V": rng.normal(0, 1.0, (m, self.dim)),
            "c": rng.normal(0, 1.0 / np.sqrt(self.dim), self.dim),
            "b": np.log(prior / (1 - prior)),  # start at each model's mean outcome
        }
        opt = Adam(p, lr=self.lr)
        for _ in range(self.epochs):
            for idx in minibatches(len(Z), 128, rng):
                opt.step(self._grads(p, Z[idx], Y[idx], M[idx]))
        self._p = {"mean": mean, "std": std, **p}
        return self

    def _grads(self, p: dict[str, np.ndarray], Z: np.ndarray, Y: np.ndarray, M: np.ndarray) -> dict[str, np.ndarray]:
        T = Z @ p["W"]  # (n, dim) projected queries
        A = p["V"] * p["c"]  # (m, dim) model factors read through the head
        dz = M * (sigmoid(T @ A.T + p["b"]) - Y) / max(M.sum(), 1.0)
        dA = dz.T @ T
        return {
            "W": Z.T @ (dz @ A) + self.l2 * p["W"],
            "V": dA * p["c"] + self.l2 * p["V"],
            "c": (dA * p["V"]).sum(axis=0),
            "b": dz.sum(axis=0),
        }

    def predict(self, X: np.ndarray, *, categories: Sequence[str] | None = None) -> np.ndarray:
        p = self._p
        Z = (np.asarray(X, dtype=np.float64) - p["mean"]) / p["std"]
        return sigmoid((Z @ p["W"]) @ (p["V"] * p["c"]).T + p["b"])

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self._p)

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._p = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
