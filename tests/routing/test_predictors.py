"""Each predictor learns a planted signal and falls to chance on shuffled labels; state round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.routing.predictors import PREDICTORS, make_predictor, predictor_from_state

from .synthetic import planted_table

FAST = {
    "knn": {"k": 25},
    "logistic": {"l2": 1.0},
    "mlp": {"hidden": 32, "epochs": 30, "lr": 1e-2},
    "mf": {"dim": 8, "epochs": 30, "lr": 1e-2},
    "domain-knn": {"k": 25},  # without categories: a kNN around the global mean
}


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve over the observed cells (rank-sum formula)."""
    seen = ~np.isnan(labels)
    s, y = scores[seen], labels[seen]
    ranks = np.empty(len(s))
    ranks[np.argsort(s)] = np.arange(1, len(s) + 1)
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def _centered_auc(pred: np.ndarray, y: np.ndarray) -> float:
    # per-model mean removed: the signal must be *which query*, not just which model is better on average
    return float(np.mean([_auc(pred[:, j], y[:, j]) for j in range(y.shape[1])]))


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_learns_planted_signal_and_not_shuffled_labels(name: str) -> None:
    X, y = planted_table(seed=1)
    X_train, y_train, X_test, y_test = X[:450], y[:450], X[450:], y[450:]
    pred = make_predictor(name, **FAST[name]).fit(X_train, y_train)
    p = pred.predict(X_test)
    assert p.shape == y_test.shape and np.all((p >= 0) & (p <= 1))
    assert _centered_auc(p, y_test) > 0.75
    shuffled = y_train[np.random.default_rng(2).permutation(len(y_train))]
    p_shuf = make_predictor(name, **FAST[name]).fit(X_train, shuffled).predict(X_test)
    assert abs(_centered_auc(p_shuf, y_test) - 0.5) < 0.08


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_state_round_trip_gives_identical_predictions(name: str) -> None:
    X, y = planted_table(n=200, seed=3)
    pred = make_predictor(name, **FAST[name]).fit(X, y)
    params, arrays = pred.to_state()
    again = predictor_from_state(params, arrays)
    np.testing.assert_allclose(again.predict(X[:20]), pred.predict(X[:20]), rtol=1e-6, atol=1e-7)
    assert params["name"] == name and again.hyper_parameters() == pred.hyper_parameters()


def test_unknown_predictor_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="valid: domain-knn, knn, logistic, mf, mlp"):
        make_predictor("svm")
