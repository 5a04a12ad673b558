"""N-tier sweeps: λ from best-predicted to cheapest, and exact cloud shares."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.evaluation.sweeps import cloud_share_curve, cost_quality_sweep, quality_at_share


def test_lambda_sweep_spans_best_predicted_to_cheapest() -> None:
    rng = np.random.default_rng(0)
    truth = (rng.random((500, 3)) < [0.4, 0.5, 0.7]).astype(float)
    pred = truth * 0.5 + rng.random((500, 3)) * 0.5
    costs = np.array([0.01, 0.1, 1.0])
    sweep = cost_quality_sweep(pred, truth, costs)
    assert np.allclose(sweep.tier_share.sum(axis=1), 1.0)
    best = np.argmax(pred, axis=1)
    assert sweep.quality[0] == pytest.approx(truth[np.arange(500), best].mean())  # λ = 0
    assert sweep.tier_share[-1][0] == 1.0 and sweep.cost[-1] == pytest.approx(0.01)  # λ = ∞
    assert np.all(np.diff(sweep.tier_share[:, -1]) <= 1e-12)  # cloud share only falls as λ grows
    assert np.all(np.diff(sweep.cost) <= 1e-12)
    assert len(sweep.cost) > 50


def test_quality_at_share_sends_exactly_that_share_to_the_cloud() -> None:
    truth = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=float)
    adv = np.array([0.0, 0.9, -0.5, 0.1])
    local = np.array([0, 1, 1, 0])
    # 50 %: rows 1 and 3 go to the cloud (1 + 0), rows 0 and 2 stay local (1 + 1) → 0.75
    assert quality_at_share(adv, local, truth, 0.5) == pytest.approx(0.75)
    assert quality_at_share(adv, local, truth, 0.0) == pytest.approx(0.5)
    assert quality_at_share(adv, local, truth, 1.0) == pytest.approx(0.5)


def test_cloud_share_curve_of_an_oracle_beats_the_cloud() -> None:
    rng = np.random.default_rng(1)
    truth = (rng.random((1000, 3)) < [0.4, 0.45, 0.6]).astype(float)
    curve = cloud_share_curve(truth, truth, shares=np.array([0.0, 0.3, 1.0]))
    assert curve.quality[1] > truth[:, -1].mean()  # oracle at 30 % cloud > all-cloud
    assert curve.quality[2] == pytest.approx(truth[:, -1].mean())
