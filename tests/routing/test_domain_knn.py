"""The domain-knn predictor: domain means plus a neighbour correction; trainable by `tierwise train`."""

from __future__ import annotations

import csv

import numpy as np

from tests.evaluation.tables import TOPICS, synthetic_table
from tierwise.routing.predictors.domain_knn import DomainKnnPredictor


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


def test_without_categories_the_neighbours_vote_for_the_domain() -> None:
    """At serving time a query's domain is unknown: features that cluster by domain let the neighbours name it."""
    table = synthetic_table(600, tiers=2, seed=3)
    cats = table.categories
    assert cats is not None
    rng = np.random.default_rng(1)
    centres = {topic: rng.normal(size=8) * 4 for topic in TOPICS}
    X = np.stack([centres[c] + rng.normal(size=8) for c in cats])
    pred = DomainKnnPredictor(k=15).fit(X[:500], table.scores[:500], categories=cats[:500])
    told = pred.predict(X[500:], categories=cats[500:])
    voted = pred.predict(X[500:])
    assert np.abs(told - voted).max() < 0.05
    blind = DomainKnnPredictor(k=15).fit(X[:500], table.scores[:500])  # no categories at all: kNN around the mean
    assert np.abs(blind.predict(X[500:]) - told).mean() > np.abs(voted - told).mean()


def test_tierwise_train_fits_domain_knn(tmp_path) -> None:
    """`tierwise train --predictors domain-knn` on a table with categories writes a router that serves."""
    from typer.testing import CliRunner

    from tierwise.cli import app
    from tierwise.routing.learned import LearnedRouter
    from tierwise.routing.router import RouteRequest, TierView

    table = synthetic_table(300, tiers=2, seed=5)
    assert table.categories is not None
    path = tmp_path / "outcomes.csv"
    with path.open("w", newline="") as f:  # the generic long format, with a category per query
        writer = csv.writer(f)
        writer.writerow(["query", "model", "score", "category"])
        for i, query in enumerate(table.queries):
            for j, model in enumerate(table.models):
                writer.writerow([query, model, int(table.scores[i, j]), table.categories[i]])
    out = tmp_path / "router.json"
    tiers = f"device={table.models[0]},cloud={table.models[1]}"
    result = CliRunner().invoke(app, ["train", "--data", str(path), "--format", "generic", "--tiers", tiers,
                                      "--predictors", "domain-knn", "--embedding", "none", "-o", str(out)])
    assert result.exit_code == 0, result.output
    router = LearnedRouter.from_path(out)
    assert router.file.predictor["name"] == "domain-knn"
    views = [TierView("device", "device", 0.0, 0.0), TierView("cloud", "cloud", 0.55, 2.19)]
    easy = router.predict_quality([q for q, c in zip(table.queries, table.categories, strict=True) if c == TOPICS[0]])
    hard = router.predict_quality([q for q, c in zip(table.queries, table.categories, strict=True) if c == TOPICS[-1]])
    assert easy[:, 0].mean() > hard[:, 0].mean() + 0.2  # the weak tier: good on the easy topic, not the hard one
    decision = router.decide(RouteRequest(prompt=table.queries[0], conversation=table.queries[0]), views)
    assert decision.tier in {"device", "cloud"} and decision.predicted_quality is not None
