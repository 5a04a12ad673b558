"""Choosing and tuning a predictor by k-fold cross-validation (masked log loss on out-of-fold predictions)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tierwise.routing.predictors import Predictor, make_predictor

# A small grid per predictor: enough to matter, cheap enough for two cores.
DEFAULT_GRID: dict[str, list[dict[str, Any]]] = {
    "knn": [{"k": 10}, {"k": 40}, {"k": 150}],
    "logistic": [{"l2": 10.0}, {"l2": 100.0}, {"l2": 1000.0}],
    "mlp": [{"hidden": 64, "epochs": 8, "l2": 1e-3}],
    "mf": [{"dim": 32, "epochs": 8, "l2": 1e-3}],
    "domain-knn": [{"k": 50}],  # uses the table's categories when it has them (MMLU's domains)
}


@dataclass
class CandidateResult:
    """One (predictor, hyper-parameters) candidate and its cross-validated log loss (lower is better)."""

    name: str
    params: dict[str, Any]
    log_loss: float

    @property
    def predictor_label(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.params.items())})"

    def to_dict(self) -> dict[str, Any]:
        return {"predictor": self.name, "params": self.params, "log_loss": round(self.log_loss, 5)}


def masked_log_loss(pred: np.ndarray, scores: np.ndarray) -> float:
    """Mean binary cross-entropy over observed cells (scores may be fractional)."""
    seen = ~np.isnan(scores)
    p = np.clip(pred[seen], 1e-6, 1 - 1e-6)
    y = scores[seen]
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fold_ids(n: int, folds: int, *, seed: int = 0) -> np.ndarray:
    """A fold number per row, shuffled with `seed`."""
    return np.random.default_rng(seed).permutation(n) % folds


def out_of_fold(
    factory: Callable[[], Predictor], X: np.ndarray, scores: np.ndarray, folds: np.ndarray,
    categories: Sequence[str] | None = None,
) -> np.ndarray:
    """Predictions for every row from a predictor that did not see that row's fold. Training rows bring their
    categories; predicted rows do not (as at serving time, when a query's category is unknown)."""
    out = np.zeros(scores.shape)
    cats = None if categories is None else np.asarray(categories)
    for f in np.unique(folds):
        test = folds == f
        train_cats = None if cats is None else cats[~test].tolist()
        out[test] = factory().fit(X[~test], scores[~test], categories=train_cats).predict(X[test])
    return out


def select_predictor(
    X: np.ndarray,
    scores: np.ndarray,
    *,
    grid: dict[str, list[dict[str, Any]]] | None = None,
    folds: int = 3,
    seed: int = 0,
    on_candidate: Callable[[CandidateResult], None] | None = None,
    categories: Sequence[str] | None = None,
) -> tuple[CandidateResult, list[CandidateResult], np.ndarray]:
    """Cross-validate every candidate; return (best, all results, best's out-of-fold predictions)."""
    fold = fold_ids(len(X), folds, seed=seed)
    results: list[CandidateResult] = []
    best_oof = np.zeros(0)
    for name, settings in (grid or DEFAULT_GRID).items():
        for params in settings:
            factory = functools.partial(make_predictor, name, **params)
            oof = out_of_fold(factory, X, scores, fold, categories)
            res = CandidateResult(name, dict(params), masked_log_loss(oof, scores))
            if not results or res.log_loss < min(r.log_loss for r in results):
                best_oof = oof
            results.append(res)
            if on_candidate is not None:
                on_candidate(res)
    best = min(results, key=lambda r: r.log_loss)
    return best, results, best_oof
