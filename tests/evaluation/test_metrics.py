"""Metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.evaluation.metrics import (
    Curve,
    aiq,
    apgr,
    cpt,
    nondecreasing_hull,
    pgr,
    routellm_curve,
    routellm_thresholds,
)


def oracle_case(n: int, p_gain: float, p_loss: float) -> tuple[np.ndarray, np.ndarray]:
    """Weak/strong outcomes: p_gain of rows only the strong model gets right, p_loss only the weak one."""
    gain, loss = round(n * p_gain), round(n * p_loss)
    weak = np.zeros(n)
    strong = np.zeros(n)
    strong[:gain] = 1
    weak[gain : gain + loss] = 1
    both = gain + loss + (n - gain - loss) // 2  # half of the rest: both right
    weak[gain + loss : both] = strong[gain + loss : both] = 1
    return weak, strong


def test_thresholds_are_qcut_edges() -> None:
    # pd.qcut(range(11), 10, retbins=True)[1] == [0, 1, ..., 10]
    assert np.allclose(routellm_thresholds(np.arange(11.0)), np.arange(11.0))


def test_curve_runs_from_all_strong_to_none_with_strict_last_edge() -> None:
    score = np.arange(20.0)
    curve = routellm_curve(score, np.zeros(20), np.ones(20))
    assert curve.share[0] == 0.0 and curve.share[-1] == 1.0
    assert len(curve.share) == 11
    assert np.allclose(curve.quality, curve.share)  # strong always right, weak never


def test_oracle_apgr_matches_closed_form_and_exceeds_one() -> None:
    # gain on 20 %, loss on 10 %: decile edges land exactly on the breakpoints 0.2 and 0.9, so the trapezoid is
    # exact: APGR = (p1 − p1²/2 − p_loss²/2) / (p1 − p_loss) = (0.2 − 0.02 − 0.005) / 0.1 = 1.75
    weak, strong = oracle_case(100, 0.2, 0.1)
    curve = routellm_curve(strong - weak, weak, strong)
    assert apgr(curve, weak.mean(), strong.mean()) == pytest.approx(1.75)


def test_oracle_without_weak_wins_recovers_the_gap_after_its_gain_share() -> None:
    # never better on the weak side: PGR climbs linearly to 1 at 20 % calls, so APGR = 1 − 0.2/2 = 0.9
    weak, strong = oracle_case(100, 0.2, 0.0)
    curve = routellm_curve(strong - weak, weak, strong)
    assert apgr(curve, weak.mean(), strong.mean()) == pytest.approx(0.9)
    assert cpt(curve, weak.mean(), strong.mean(), 0.5) == pytest.approx(0.1)


def test_random_is_half_and_reversed_is_below_half() -> None:
    rng = np.random.default_rng(0)
    weak, strong = oracle_case(20_000, 0.2, 0.08)
    weak, strong = weak[rng.permutation(20_000)], strong[rng.permutation(20_000)]
    w, s = weak.mean(), strong.mean()
    random_apgr = np.mean([apgr(routellm_curve(rng.random(20_000), weak, strong), w, s) for _ in range(10)])
    assert random_apgr == pytest.approx(0.5, abs=0.02)
    reversed_apgr = apgr(routellm_curve(weak - strong, weak, strong), w, s)
    assert reversed_apgr < 0.3


def test_constant_scores_give_the_straight_line() -> None:
    weak, strong = oracle_case(50, 0.3, 0.1)
    curve = routellm_curve(np.ones(50), weak, strong)
    assert list(curve.share) == [0.0] + [1.0] * 10
    assert apgr(curve, weak.mean(), strong.mean()) == pytest.approx(0.5)


def test_cpt_on_a_known_curve() -> None:
    curve = Curve(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.8, 1.0]))
    assert cpt(curve, 0.0, 1.0, 0.5) == pytest.approx(0.3125)
    assert cpt(curve, 0.0, 1.0, 0.8) == pytest.approx(0.5)
    assert cpt(curve, 0.0, 1.0, 0.95) == pytest.approx(0.875)
    assert cpt(curve, 0.0, 1.0, 1.5) is None
    assert list(pgr(curve, 0.0, 1.0)) == [0.0, 0.8, 1.0]
    # APGR by trapezoid: 0.5·(0 + 0.8)/2 + 0.5·(0.8 + 1)/2 = 0.65
    assert apgr(curve, 0.0, 1.0) == pytest.approx(0.65)


def test_cpt_takes_the_first_crossing_of_a_non_monotone_curve() -> None:
    curve = Curve(np.array([0.0, 0.2, 0.4, 1.0]), np.array([0.0, 0.6, 0.4, 1.0]))
    assert cpt(curve, 0.0, 1.0, 0.5) == pytest.approx(0.2 * 0.5 / 0.6)


def test_apgr_uses_only_the_achieved_range() -> None:
    curve = Curve(np.array([0.2, 0.6]), np.array([0.5, 0.9]))
    # AUC = 0.4·0.7 = 0.28; weak AUC 0, strong AUC 0.4 → 0.7
    assert apgr(curve, 0.0, 1.0) == pytest.approx(0.7)


def test_hull_drops_points_under_the_chord_and_flattens_drops() -> None:
    hx, hy = nondecreasing_hull(np.array([0.0, 1.0, 2.0]), np.array([0.5, 0.6, 0.9]))
    assert list(hx) == [0.0, 2.0] and list(hy) == [0.5, 0.9]
    assert aiq(np.array([0.0, 1.0, 2.0]), np.array([0.5, 0.6, 0.9]), cost_range=(0.0, 2.0)) == pytest.approx(0.7)
    # a costlier, worse point does not pull the area down: the hull stays flat at 0.9 after cost 1
    assert aiq(np.array([0.0, 1.0, 2.0]), np.array([0.5, 0.9, 0.7]), cost_range=(0.0, 2.0)) == pytest.approx(0.8)


def test_degenerate_inputs_raise() -> None:
    with pytest.raises(ValueError):
        apgr(Curve(np.array([0.0, 1.0]), np.array([0.5, 0.5])), 0.5, 0.5)
    with pytest.raises(ValueError):
        aiq(np.array([1.0]), np.array([0.5]), cost_range=(1.0, 1.0))
