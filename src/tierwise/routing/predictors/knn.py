"""k-nearest neighbours over embeddings: a query's quality per model is its neighbours' mean outcome.

Like RouteLLM's similarity-weighted ranking, but pointwise: cosine similarity picks the `k` closest training
queries; their outcomes, weighted by similarity and shrunk towards each model's mean by `prior_weight`
pseudo-neighbours, give P(good answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from tierwise.routing.predictors.base import Predictor, observed_mean


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class KnnPredictor(Predictor):
    """Similarity-weighted mean outcome of the `k` nearest training queries (cosine), shrunk to the prior."""

    name: ClassVar[str] = "knn"

    def __init__(self, *, k: int = 20, prior_weight: float = 1.0, power: float = 1.0) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.prior_weight = prior_weight
        self.power = power  # similarity ** power: > 1 trusts the closest neighbours more
        self._X = np.zeros((0, 0), dtype=np.float32)
        self._scores = np.zeros((0, 0), dtype=np.float32)
        self._prior = np.zeros(0)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"k": self.k, "prior_weight": self.prior_weight, "power": self.power}

    def fit(self, X: np.ndarray, scores: np.ndarray, *, categories: Sequence[str] | None = None) -> Self:
        self._X = _unit_rows(X)
        self._scores = np.asarray(scores, dtype=np.float32)
        self._prior = observed_mean(self._scores)
        return self

    def predict(self, X: np.ndarray, *, categories: Sequence[str] | None = None) -> np.ndarray:
        sims = _unit_rows(X) @ self._X.T  # (n, n_train)
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        w = np.clip(np.take_along_axis(sims, top, axis=1), 0.0, None) ** self.power  # (n, k)
        s = self._scores[top]  # (n, k, m)
        seen = ~np.isnan(s)
        num = np.einsum("nk,nkm->nm", w, np.where(seen, s, 0.0))
        den = np.einsum("nk,nkm->nm", w, seen.astype(np.float32))
        prob = (num + self.prior_weight * self._prior) / (den + self.prior_weight)
        return np.asarray(prob, dtype=np.float64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"X": self._X, "scores": self._scores, "prior": self._prior}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._X = np.asarray(arrays["X"], dtype=np.float32)
        self._scores = np.asarray(arrays["scores"], dtype=np.float32)
        self._prior = np.asarray(arrays["prior"], dtype=np.float64)
