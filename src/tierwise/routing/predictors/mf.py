"""Matrix factorisation in RouteLLM's style, pointwise: logit(q, m) = cᵀ(v_m ⊙ W·x_q) + b_m.

RouteLLM's MF router projects the query embedding (W, no bias), multiplies it elementwise with a learned
model embedding v_m and reads a score with a shared linear head c; it is trained on pairwise wins of two
models. Here each (query, model) outcome is its own target (masked log loss): any number of models.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tierwise.routing.predictors._numeric import sigmoid
from tierwise.routing.predictors.gradient import GradientPredictor, Params


class MatrixFactorizationPredictor(GradientPredictor):
    """Bilinear query × model scorer with `dim` latent factors (RouteLLM's MF, one target per cell)."""

    name: ClassVar[str] = "mf"

    def __init__(self, *, dim: int = 32, l2: float = 1e-3, epochs: int = 20, lr: float = 3e-3, seed: int = 0) -> None:
        super().__init__(l2=l2, epochs=epochs, lr=lr, seed=seed)
        self.dim = dim

    def hyper_parameters(self) -> dict[str, Any]:
        return {"dim": self.dim, **super().hyper_parameters()}

    def _init_params(self, d: int, Y: np.ndarray, M: np.ndarray, rng: np.random.Generator) -> Params:
        m = Y.shape[1]
        prior = np.clip((Y * M).sum(0) / np.maximum(M.sum(0), 1), 0.02, 0.98)
        return {
            "W": rng.normal(0, 1.0 / np.sqrt(d), (d, self.dim)),
            "V": rng.normal(0, 1.0, (m, self.dim)),
            "c": rng.normal(0, 1.0 / np.sqrt(self.dim), self.dim),
            "b": np.log(prior / (1 - prior)),  # start at each model's mean outcome
        }

    def _logits(self, p: Params, Z: np.ndarray) -> np.ndarray:
        return np.asarray((Z @ p["W"]) @ (p["V"] * p["c"]).T + p["b"])

    def _grads(self, p: Params, Z: np.ndarray, Y: np.ndarray, M: np.ndarray) -> Params:
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
