"""The quality-predictor interface: features of a query → P(good answer) for each model.

A predictor only returns scores; the router applies the (calibrated) threshold in one place. Predictors are
saved without pickle: `to_state()` returns plain JSON-able hyper-parameters plus named numpy arrays, and
`from_state()` rebuilds an identical predictor from them.

Usage::

    pred = KnnPredictor(k=20).fit(X_train, scores_train)      # scores: (n, m) in [0, 1], NaN = missing
    p = pred.predict(X_test)                                  # (n_test, m) ≈ P(good answer)
    params, arrays = pred.to_state(); same = KnnPredictor.from_state(params, arrays)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

State = tuple[dict[str, Any], dict[str, np.ndarray]]


class Predictor(ABC):
    """Predicts, for each query (a row of X) and each model (a column), the probability of a good answer.

    `fit` takes `scores` of shape (n, m) in [0, 1] with NaN for missing outcomes (ignored in the loss) and
    optional per-row `categories` (predictors may ignore them). `predict` returns shape (n, m) in [0, 1].
    Subclasses declare `name` (their registry key) and their hyper-parameters as keyword-only constructor
    arguments, listed in `hyper_parameters()`.
    """

    name: ClassVar[str] = "predictor"

    @abstractmethod
    def fit(self, X: np.ndarray, scores: np.ndarray, *, categories: Sequence[str] | None = None) -> Self:
        """Learn from features `X` (n, d) and outcomes `scores` (n, m); return self."""

    @abstractmethod
    def predict(self, X: np.ndarray, *, categories: Sequence[str] | None = None) -> np.ndarray:
        """P(good answer) per row of `X` and per model, shape (n, m)."""

    @abstractmethod
    def hyper_parameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-able) that rebuild this predictor untrained."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The learned state as named arrays (empty before `fit`)."""

    @abstractmethod
    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the learned state saved by `arrays()`."""

    def to_state(self) -> State:
        """(JSON-able params, named arrays): everything needed to rebuild the fitted predictor, no pickle."""
        return {"name": self.name, "hyper_parameters": self.hyper_parameters()}, self.arrays()

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        """Rebuild a fitted predictor from `to_state()`'s output."""
        obj = cls(**params.get("hyper_parameters", {}))
        obj.load_arrays(arrays)
        return obj


def observed_mean(scores: np.ndarray) -> np.ndarray:
    """Each model's mean observed score (0.5 where a model has no outcome at all): the prior for a model."""
    counts = (~np.isnan(scores)).sum(axis=0)
    sums = np.nansum(scores, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.5)
