"""Base for predictors trained by gradient descent: standardized features, masked log loss, Adam, minibatches.

A subclass says only what is its own: how its parameters start (`_init_params`), its logits (`_logits`) and
their gradients (`_grads`); fitting, prediction and saving are shared here.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from tierwise.routing.predictors._numeric import Adam, masked_targets, minibatches, sigmoid, standardizer
from tierwise.routing.predictors.base import Predictor

Params = dict[str, np.ndarray]


class GradientPredictor(Predictor):
    """One sigmoid output per model, trained with Adam on the observed (query, model) outcomes only."""

    def __init__(self, *, l2: float = 1e-3, epochs: int = 20, lr: float = 3e-3, seed: int = 0) -> None:
        self.l2 = l2
        self.epochs = epochs
        self.lr = lr
        self.seed = seed
        self._p: Params = {}

    def hyper_parameters(self) -> dict[str, Any]:
        return {"l2": self.l2, "epochs": self.epochs, "lr": self.lr, "seed": self.seed}

    @abstractmethod
    def _init_params(self, d: int, Y: np.ndarray, M: np.ndarray, rng: np.random.Generator) -> Params:
        """Starting parameters for `d` features and the targets `Y` observed where `M` is 1."""

    @abstractmethod
    def _logits(self, p: Params, Z: np.ndarray) -> np.ndarray:
        """Logits (n, m) for standardized features `Z`."""

    @abstractmethod
    def _grads(self, p: Params, Z: np.ndarray, Y: np.ndarray, M: np.ndarray) -> Params:
        """Gradients of the masked log loss (plus L2) on one minibatch."""

    def fit(self, X: np.ndarray, scores: np.ndarray, *, categories: Sequence[str] | None = None) -> Self:
        rng = np.random.default_rng(self.seed)
        X = np.asarray(X, dtype=np.float64)
        mean, std = standardizer(X)
        Z = (X - mean) / std
        Y, M = masked_targets(np.asarray(scores, dtype=np.float64))
        p = self._init_params(Z.shape[1], Y, M, rng)
        opt = Adam(p, lr=self.lr)
        for _ in range(self.epochs):
            for idx in minibatches(len(Z), 128, rng):
                opt.step(self._grads(p, Z[idx], Y[idx], M[idx]))
        self._p = {"mean": mean, "std": std, **p}
        return self

    def predict(self, X: np.ndarray, *, categories: Sequence[str] | None = None) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self._p["mean"]) / self._p["std"]
        return sigmoid(self._logits(self._p, Z))

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self._p)

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._p = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
