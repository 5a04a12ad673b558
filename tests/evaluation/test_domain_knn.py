"""The domain-knn predictor (in the evaluation's predictor list): domain means plus a neighbour correction."""

from __future__ import annotations

import numpy as np

from tierwise.routing.predictors.domain_knn import DomainKnnPredictor

from .tables import TOPICS, synthetic_table


def test_domain_means_and_state_round_trip() -> None:
    table = synthetic_table(600, tiers=2, seed=7)
    X = np.random.default_rng(0).normal(size=(600, 8))  # features with no signal: the domain carries it
    cats = table.categories
    assert cats is not None
    pred = DomainKnnPredictor(k=5).fit(X, table.scores, categories=cats)
    p = pred.predict(X[:50], categories=cats[:50])
    easy = np.array([c == TOPICS[0] for c in cats[:50]])
    hard = np.array([c == TOPICS[-1] for c in cats[:50]])
    assert p[easy, 0].mean() > p[hard, 0].mean() + 0.3  # the weak tier fails on the hard topic
    assert np.all((p >= 0) & (p <= 1))
    again = DomainKnnPredictor.from_state(*pred.to_state())
    assert np.allclose(again.predict(X[:50], categories=cats[:50]), p)
    unseen = pred.predict(X[:3], categories=["never seen"] * 3)  # falls back to the global mean + kNN
    assert unseen.shape == (3, 2)
