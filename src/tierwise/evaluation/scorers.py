"""What the runner evaluates: scorers (predicted quality per tier for held-out rows) and fixed-tier baselines.

A `Scorer` is fitted on some rows of a table and predicts an (n, m) matrix of quality per tier for other rows;
the metrics turn that matrix into operating points. Baselines that are a single operating point
(always-cheapest, always-best) are `FixedTier`s instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tierwise.outcomes import OutcomeTable

FeatureFn = Callable[[OutcomeTable], np.ndarray]
"""Features for every row of a table, shape (n, d); computed once per table and reused across folds."""


class Scorer(Protocol):
    """Predicts the quality of each tier for held-out rows, having seen only the training rows' outcomes."""

    name: str

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        """Learn from `table`'s rows `rows` (features and outcomes)."""

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
        """Predicted quality, shape (len(rows), m); must not read the outcomes of `rows`."""


@dataclass
class PredictorScorer:
    """A routing predictor (see `tierwise.routing.predictors`) over precomputed features of the table.

    `cascade=True` marks a scorer whose features include the cheapest tier's answer: every query has then paid
    for a cheapest-tier call before the decision, which `paid_costs` adds to the cost of escalated queries.
    """

    name: str
    factory: Callable[[], Any]  # → a fresh, unfitted Predictor
    features: FeatureFn
    cascade: bool = False
    _X: np.ndarray | None = field(default=None, repr=False)
    _table_id: int = -1
    _model: Any = None

    def _feats(self, table: OutcomeTable) -> np.ndarray:
        if self._X is None or self._table_id != id(table):
            self._X, self._table_id = np.asarray(self.features(table)), id(table)
        return self._X

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        cats = None if table.categories is None else [table.categories[i] for i in rows]
        self._model = self.factory().fit(self._feats(table)[rows], table.scores[rows], categories=cats)

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
        cats = None if table.categories is None else [table.categories[i] for i in rows]
        return np.asarray(self._model.predict(self._feats(table)[rows], categories=cats), dtype=float)


def paid_costs(scorer: Scorer, costs: np.ndarray) -> np.ndarray:
    """Cost per call of each tier as `scorer` pays it: a cascade has already paid the cheapest tier's call."""
    costs = np.asarray(costs, dtype=float)
    if not getattr(scorer, "cascade", False):
        return costs
    return np.concatenate([costs[:1], costs[1:] + costs[0]])


@dataclass
class RandomScorer:
    """Random routing: the baseline every router must beat (APGR ≈ 0.5).

    Each tier is predicted at its training mean, and the cloud (last) tier gets uniform noise on top: the cloud
    calls are a random subset, and the other queries go to the local tier that is best on average.
    """

    seed: int = 0
    name: str = "random"
    _mean: np.ndarray | None = None

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        self._mean = np.nanmean(table.scores[rows], axis=0) if len(rows) else np.zeros(len(table.models))

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
        if self._mean is None:
            raise RuntimeError("fit first")
        pred = np.tile(self._mean, (len(rows), 1))
        pred[:, -1] += np.random.default_rng(self.seed).random(len(rows))
        return pred


@dataclass
class OracleScorer:
    """Reads the held-out outcomes themselves (an upper bound, not a router); tiny seeded noise breaks ties."""

    seed: int = 0
    name: str = "oracle"

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        return None

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
        noise = np.random.default_rng(self.seed).random((len(rows), len(table.models)))
        return np.asarray(table.scores[rows], dtype=float) + 1e-6 * noise


def prompt_length(table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
    """log(1 + characters) of each query: the one feature of the length heuristic."""
    return np.log1p(np.array([len(table.queries[i]) for i in rows], dtype=float))


@dataclass
class LengthScorer:
    """Prompt-length heuristic: per-tier least-squares line of quality on log prompt length (training rows).

    Longer prompts are often harder; the fitted slopes say by how much for each tier, so on two tiers the
    router sends the longest prompts to the strong model when the data says they gain most there.
    """

    name: str = "prompt-length"
    _coef: np.ndarray | None = None  # (2, m): intercept and slope per tier

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        x = prompt_length(table, rows)
        design = np.stack([np.ones_like(x), x], axis=1)
        y = np.asarray(table.scores[rows], dtype=float)
        coef = np.zeros((2, y.shape[1]))
        for j in range(y.shape[1]):
            ok = ~np.isnan(y[:, j])
            coef[:, j] = np.linalg.lstsq(design[ok], y[ok, j], rcond=None)[0]
        self._coef = coef

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
        if self._coef is None:
            raise RuntimeError("fit first")
        x = prompt_length(table, rows)
        return np.asarray(self._coef[0][None, :] + x[:, None] * self._coef[1][None, :])


@dataclass(frozen=True)
class FixedTier:
    """A baseline that always picks one tier: `pick(train_table_scores, costs)` → the tier index."""

    name: str
    pick: Callable[[np.ndarray, np.ndarray], int]


def _cheapest(scores: np.ndarray, costs: np.ndarray) -> int:
    return int(np.argmin(costs))


def _best(scores: np.ndarray, costs: np.ndarray) -> int:
    return int(np.nanargmax(np.nanmean(scores, axis=0)))


ALWAYS_CHEAPEST = FixedTier("always-cheapest", _cheapest)
ALWAYS_BEST = FixedTier("always-best", _best)
