"""Per-domain mean plus a k-nearest-neighbour correction: for data whose rows carry a category (MMLU's domain).

P(good answer | query) = domain mean (shrunk towards the global mean by `domain_prior` pseudo-rows) + the
similarity-weighted mean residual (outcome − its domain mean) of the `k` closest training queries, shrunk
towards 0 by `knn_prior` pseudo-neighbours. Without categories at fit time it is a kNN around the global mean.
At serving time a query's category is unknown: `predict` without categories takes, for each query, the domain
that its `k` nearest training queries vote for (weighted by similarity), so a router file trained with categories
routes live traffic by the same model. Usage::

    pred = DomainKnnPredictor(k=50).fit(X, scores, categories=domains)
    p = pred.predict(X_new, categories=new_domains)      # (n, m), clipped to [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from tierwise.routing.predictors.base import Predictor, observed_mean


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class DomainKnnPredictor(Predictor):
    """Shrunk per-category mean outcome + kNN mean residual (cosine similarity)."""

    name: ClassVar[str] = "domain-knn"

    def __init__(self, *, k: int = 50, domain_prior: float = 5.0, knn_prior: float = 12.0) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.domain_prior = domain_prior
        self.knn_prior = knn_prior
        self._X = np.zeros((0, 0), dtype=np.float32)
        self._residual = np.zeros((0, 0), dtype=np.float32)
        self._global = np.zeros(0)
        self._domains = np.zeros(0, dtype=str)
        self._domain_means = np.zeros((0, 0))
        self._row_domains = np.zeros(0, dtype=np.int32)  # each training row's domain index (-1: none)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"k": self.k, "domain_prior": self.domain_prior, "knn_prior": self.knn_prior}

    def _base(self, categories: Sequence[str] | None, n: int) -> np.ndarray:
        base = np.tile(self._global, (n, 1))
        if categories is None or not len(self._domains):
            return base
        index = {d: i for i, d in enumerate(self._domains.tolist())}
        for row, cat in enumerate(categories):
            if cat in index:  # an unseen domain keeps the global mean
                base[row] = self._domain_means[index[cat]]
        return base

    def fit(self, X: np.ndarray, scores: np.ndarray, *, categories: Sequence[str] | None = None) -> Self:
        scores = np.asarray(scores, dtype=np.float64)
        self._global = observed_mean(scores)
        names = sorted(set(categories)) if categories is not None else []
        cats = np.asarray(categories) if categories is not None else None
        means = np.zeros((len(names), scores.shape[1]))
        for i, d in enumerate(names):
            block = scores[cats == d]
            seen = ~np.isnan(block)
            sums = np.where(seen, block, 0.0).sum(axis=0)
            means[i] = (sums + self.domain_prior * self._global) / (seen.sum(axis=0) + self.domain_prior)
        self._domains, self._domain_means = np.array(names, dtype=str), means
        index = {d: i for i, d in enumerate(names)}
        self._row_domains = np.array([index[c] for c in categories] if categories is not None else
                                     [-1] * len(scores), dtype=np.int32)
        self._X = _unit_rows(X)
        self._residual = (scores - self._base(categories, len(scores))).astype(np.float32)
        return self

    def predict(self, X: np.ndarray, *, categories: Sequence[str] | None = None) -> np.ndarray:
        n = len(X)
        if not len(self._X):
            return self._base(categories, n)
        sims = _unit_rows(X) @ self._X.T
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        w = np.clip(np.take_along_axis(sims, top, axis=1), 0.0, None)
        if categories is None and len(self._domains) and len(self._row_domains) == len(self._X):
            categories = self._voted_domains(top, w)
        base = self._base(categories, n)
        r = self._residual[top]  # (n, k, m), NaN where the neighbour has no outcome
        seen = ~np.isnan(r)
        num = np.einsum("nk,nkm->nm", w, np.where(seen, r, 0.0))
        den = np.einsum("nk,nkm->nm", w, seen.astype(np.float32))
        return np.clip(base + num / (den + self.knn_prior), 0.0, 1.0)

    def _voted_domains(self, top: np.ndarray, w: np.ndarray) -> list[str]:
        """Each query's domain as its nearest training queries vote for it, by similarity."""
        votes = np.zeros((len(top), len(self._domains)))
        row_domains = self._row_domains[top]  # (n, k)
        for j in range(len(self._domains)):
            votes[:, j] = np.where(row_domains == j, w, 0.0).sum(axis=1)
        return [str(d) for d in self._domains[votes.argmax(axis=1)]]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "X": self._X,
            "residual": self._residual,
            "global": self._global,
            "domains": self._domains,
            "domain_means": self._domain_means,
            "row_domains": self._row_domains,
        }

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._X = np.asarray(arrays["X"], dtype=np.float32)
        self._residual = np.asarray(arrays["residual"], dtype=np.float32)
        self._global = np.asarray(arrays["global"], dtype=np.float64)
        self._domains = np.asarray(arrays["domains"]).astype(str)
        self._domain_means = np.asarray(arrays["domain_means"], dtype=np.float64)
        # files written before domains were voted for lack it: those predict around the global mean
        self._row_domains = np.asarray(arrays.get("row_domains", np.zeros(0)), dtype=np.int32)
