"""A one-hidden-layer MLP with one sigmoid output per model, trained on masked log loss with Adam."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tierwise.routing.predictors._numeric import sigmoid
from tierwise.routing.predictors.gradient import GradientPredictor, Params


class MlpPredictor(GradientPredictor):
    """Shared ReLU hidden layer (`hidden` units) → one logit per model; missing outcomes do not count."""

    name: ClassVar[str] = "mlp"

    def __init__(
        self, *, hidden: int = 64, l2: float = 1e-3, epochs: int = 20, lr: float = 3e-3, seed: int = 0
    ) -> None:
        super().__init__(l2=l2, epochs=epochs, lr=lr, seed=seed)
        self.hidden = hidden

    def hyper_parameters(self) -> dict[str, Any]:
        return {"hidden": self.hidden, **super().hyper_parameters()}

    def _init_params(self, d: int, Y: np.ndarray, M: np.ndarray, rng: np.random.Generator) -> Params:
        m = Y.shape[1]
        return {
            "W1": rng.normal(0, np.sqrt(2.0 / d), (d, self.hidden)),
            "b1": np.zeros(self.hidden),
            "W2": rng.normal(0, np.sqrt(1.0 / self.hidden), (self.hidden, m)),
            "b2": np.zeros(m),
        }

    def _logits(self, p: Params, Z: np.ndarray) -> np.ndarray:
        return np.asarray(np.maximum(Z @ p["W1"] + p["b1"], 0.0) @ p["W2"] + p["b2"])

    def _grads(self, p: Params, Z: np.ndarray, Y: np.ndarray, M: np.ndarray) -> Params:
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
