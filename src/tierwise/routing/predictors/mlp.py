"""A one-hidden-layer MLP with one sigmoid output per model, trained on masked log loss with Adam."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from tierwise.routing.predictors._numeric import Adam, masked_targets, minibatches, sigmoid, standardizer
from tierwise.routing.predictors.base import Predictor


class MlpPredictor(Predictor):
    """Shared ReLU hidden layer (`hidden` units) → one logit per model; missing outcomes do not count."""

    name: ClassVar[str] = "mlp"

    def __init__(
        self, *, hidden: int = 64, l2: float = 1e-3, epochs: int = 20, lr: float = 3e-3, seed: int = 0
    ) -> None:
        self.hidden = hidden
        self.l2 = l2
        self.epochs = epochs
        self.lr = lr
        self.seed = seed
        self._p: dict[str, np.ndarray] = {}

    def hyper_parameters(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "l2": self.l2, "epochs": self.epochs, "lr": self.lr, "seed": self.seed}

    def fit(self, X: np.ndarray, scores: np.ndarray, *, categories: Sequence[str] | None = None) -> Self:
        rng = np.random.default_rng(self.seed)
        X = np.asarray(X, dtype=np.float64)
        mean, std = standardizer(X)
        Z = (X - mean) / std
        Y, M = masked_targets(np.asarray(scores, dtype=np.float64))
        d, m = Z.shape[1], Y.shape[1]
        p = {
            "W1": rng.normal(0, np.sqrt(2.0 / d), (d, self.hidden)),
            "b1": np.zeros(self.hidden),
            "W2": rng.normal(0, np.sqrt(1.0 / self.hidden), (self.hidden, m)),
            "b2": np.zeros(m),
        }
        opt = Adam(p, lr=self.lr)
        for _ in range(self.epochs):
            for idx in minibatches(len(Z), 128, rng):
                opt.step(self._grads(p, Z[idx], Y[idx], M[idx]))
        self._p = {"mean": mean, "std": std, **p}
        return self

    def _grads(self, p: dict[str, np.ndarray], Z: np.ndarray, Y: np.ndarray, M: np.ndarray) -> dict[str, np.ndarray]:
        pre = Z @ p["W1"] + p["b1"]
        h = np.maximum(pre, 0.0)
        dz = M * (sigmoid(h @ p["W2"] + p["b2"]) - Y) / max(M.sum(), 1.0)
        dh = (dz @ p["W2"].T) * (pre > 0)
        return {
            "W1": Z.T @ dh + self.l2 * p["W1"],
            "b1": dh.sum(axis=0),
            "W2": h.T @ dz + self.l2 * p["W2"],
            "b2": dz.sum(axis=0),
        }

    def predict(self, X: np.ndarray, *, categories: Sequence[str] | None = None) -> np.ndarray:
        p = self._p
        Z = (np.asarray(X, dtype=np.float64) - p["mean"]) / p["std"]
        h = np.maximum(Z @ p["W1"] + p["b1"], 0.0)
        return sigmoid(h @ p["W2"] + p["b2"])

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self._p)

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._p = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
