"""Calibration hits its target share on held-out data; a router file round-trips to identical decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tierwise.errors import NoTierAvailable
from tierwise.outcomes import OutcomeTable
from tierwise.routing.calibrate import cloud_margins, cloud_share, tolerance_for_share
from tierwise.routing.decision import choose_tier
from tierwise.routing.features import FeaturizerSettings
from tierwise.routing.learned import LearnedRouter
from tierwise.routing.predictors import make_predictor
from tierwise.routing.router import ROUTERS, RouteRequest, TierView
from tierwise.routing.selection import fold_ids, out_of_fold
from tierwise.routing.settings import RouterSettings
from tierwise.routing.train import parse_tiers, train_router

from .synthetic import planted_table

VIEWS = [
    TierView("device", "device", 0, 0),
    TierView("edge", "edge", 0.02, 0.06),
    TierView("cloud", "cloud", 0.55, 2.19),
]


@pytest.fixture(scope="module")
def margins_train_and_heldout() -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold margins on 6,000 training rows, and the final model's margins on 4,000 held-out rows."""
    X, y = planted_table(n=10000, m=3, seed=7)
    train, test = np.arange(6000), np.arange(6000, 10000)
    is_cloud = [False, False, True]
    oof = out_of_fold(lambda: make_predictor("logistic", l2=1.0), X[train], y[train], fold_ids(6000, 5))
    final = make_predictor("logistic", l2=1.0).fit(X[train], y[train])
    return cloud_margins(oof, is_cloud), cloud_margins(final.predict(X[test]), is_cloud)


@pytest.mark.parametrize("target", [0.1, 0.2, 0.35])
def test_calibration_within_two_points_on_held_out_data(
    target: float, margins_train_and_heldout: tuple[np.ndarray, np.ndarray]
) -> None:
    train_margins, heldout_margins = margins_train_and_heldout
    tol = tolerance_for_share(train_margins, target)
    assert abs(cloud_share(heldout_margins, tol) - target) <= 0.02


def test_tolerance_rules() -> None:
    margins = np.array([-0.2, 0.0, 0.1, 0.2, 0.3])
    assert cloud_share(margins, tolerance_for_share(margins, 0.4)) == pytest.approx(0.4)
    assert tolerance_for_share(margins, 0.0) == pytest.approx(0.3)
    assert tolerance_for_share(margins, 1.0) == 0.0  # never below 0: capped at the share where cloud is best
    with pytest.raises(ValueError):
        tolerance_for_share(margins, 1.2)


def test_choose_tier_cheapest_within_tolerance() -> None:
    q = {"device": 0.70, "edge": 0.78, "cloud": 0.80}
    cost = {"device": 0.0, "edge": 1e-5, "cloud": 5e-4}
    assert choose_tier(VIEWS, q, cost, tolerance=0.05).tier == "edge"
    assert choose_tier(VIEWS, q, cost, tolerance=0.15).tier == "device"
    c = choose_tier(VIEWS, q, cost, tolerance=0.0)
    assert c.tier == "cloud" and c.fallbacks == ["device", "edge"] and c.reasons


def _tiny_table(n: int = 240) -> OutcomeTable:
    """Text queries whose topic decides which tier answers well (math → only cloud; chat → all)."""
    rng = np.random.default_rng(0)
    queries, scores = [], []
    for i in range(n):
        if i % 2:
            queries.append(f"Compute the integral of x^{i % 7 + 2} * sin({i}x) dx and prove convergence {i}")
            scores.append([0.0, float(rng.random() < 0.3), 1.0])
        else:
            queries.append(f"Say hello politely to my friend number {i} and wish a nice day")
            scores.append([1.0, 1.0, 1.0])
    return OutcomeTable(queries=queries, models=["small", "mid", "big"], scores=np.array(scores))


def test_router_file_round_trip_gives_identical_decisions(tmp_path: Path) -> None:
    tiers = parse_tiers("device=small,edge=mid,cloud=big")
    grid = {"knn": [{"k": 10}], "logistic": [{"l2": 10.0}]}
    rf = train_router(
        _tiny_table(), tiers, target_cloud_share=0.5, grid=grid, featurizer=FeaturizerSettings(embedding="none")
    )
    path = rf.save(tmp_path / "router.json")
    assert (tmp_path / "router.npz").exists()
    first = LearnedRouter(rf)
    again = ROUTERS["learned"](RouterSettings(model=path))
    prompts = [
        "Compute the integral of x^3 * sin(5x) dx and prove convergence 5",
        "Say hello politely to my friend number 8 and wish a nice day",
        "hi",
    ]
    for p in prompts:
        a, b = first.decide(RouteRequest(p, p), VIEWS), again.decide(RouteRequest(p, p), VIEWS)
        assert a.to_dict() == b.to_dict()
        assert set(a.predicted_quality or {}) == {"device", "edge", "cloud"} and a.expected_cost_usd
    assert first.decide(RouteRequest(prompts[0], prompts[0]), VIEWS).tier == "cloud"
    assert first.decide(RouteRequest(prompts[1], prompts[1]), VIEWS).tier == "device"
    # only the tiers it is given: with cloud not allowed, never cloud
    assert again.decide(RouteRequest(prompts[0], prompts[0]), VIEWS[:2]).tier in {"device", "edge"}
    with pytest.raises(NoTierAvailable):
        again.decide(RouteRequest("x", "x"), [])
    # re-calibrating to another share at load time moves the tolerance
    assert LearnedRouter.from_path(path, target_cloud_share=0.0).tolerance >= first.tolerance
