"""From predicted scores to routing decisions, swept over a knob: the operating points of one router.

Tiers are ordered cheapest first; the last one is "cloud" (the strong model when there are two).

- `cost_quality_sweep`: each query goes to argmax_j (predicted_j − λ·cost_j), for λ from 0 (best predicted
  tier) to ∞ (cheapest tier); gives (mean cost, mean quality, share per tier) per λ.
- `cloud_share_curve`: the top ⌊s·n⌉ queries by predicted cloud advantage (predicted cloud − best predicted
  non-cloud) go to the cloud, the rest to their best predicted non-cloud tier; gives quality at exact shares s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierwise.evaluation.metrics import Curve

CLOUD_SHARES = (0.1, 0.2, 0.3)


@dataclass(frozen=True)
class CostQualityPoints:
    """Operating points of one router on the cost axis: mean cost, mean quality, and share per tier."""

    cost: np.ndarray  # (k,)
    quality: np.ndarray  # (k,)
    tier_share: np.ndarray  # (k, m)
    lambdas: np.ndarray  # (k,)


def _decide(pred: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
    # argmax keeps the first maximum; tiers are cheapest first, so ties go to the cheaper tier
    return np.asarray(np.argmax(pred - lam * costs[None, :], axis=1))


def _lambda_grid(pred: np.ndarray, costs: np.ndarray, *, num_points: int) -> np.ndarray:
    """λ values at which decisions change, thinned to quantiles: one point per ~1/num_points of the flips."""
    m = len(costs)
    ratios = [
        (pred[:, j] - pred[:, k]) / (costs[j] - costs[k]) for j in range(m) for k in range(j) if costs[j] != costs[k]
    ]
    pos = np.concatenate([r[r > 0] for r in ratios]) if ratios else np.zeros(0)
    if pos.size == 0:
        return np.array([0.0, np.inf])
    inner = np.quantile(pos, np.linspace(0.0, 1.0, num_points))
    # each breakpoint itself is a tie; evaluating just above it lands on the cheaper side consistently
    return np.unique(np.concatenate([[0.0], inner * (1 + 1e-9), [np.inf]]))


def cost_quality_sweep(
    pred: np.ndarray, truth: np.ndarray, costs: np.ndarray, *, num_points: int = 101
) -> CostQualityPoints:
    """Sweep λ in argmax(pred − λ·cost); quality is the mean of `truth` at the chosen tiers."""
    pred, truth, costs = np.asarray(pred, float), np.asarray(truth, float), np.asarray(costs, float)
    n, m = truth.shape
    rows = np.arange(n)
    lams = _lambda_grid(pred, costs, num_points=num_points)
    cost, qual, shares = [], [], []
    for lam in lams:
        choice = np.zeros(n, dtype=int) if np.isinf(lam) else _decide(pred, costs, lam)
        cost.append(float(costs[choice].mean()))
        qual.append(float(truth[rows, choice].mean()))
        shares.append(np.bincount(choice, minlength=m) / n)
    return CostQualityPoints(np.array(cost), np.array(qual), np.array(shares), lams)


def cloud_advantage(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted cloud − best predicted non-cloud tier, index of that non-cloud tier) per query."""
    pred = np.asarray(pred, float)
    local = pred[:, :-1]
    best_local = np.argmax(local, axis=1)
    return pred[:, -1] - local[np.arange(len(pred)), best_local], best_local


def quality_at_share(
    advantage: np.ndarray, local_choice: np.ndarray, truth: np.ndarray, share: float, *, seed: int = 0
) -> float:
    """Mean quality when exactly round(share·n) queries, those with the largest advantage, go to the cloud.

    Ties in `advantage` are broken at random (seeded) so that a constant-score router behaves like random.
    """
    truth = np.asarray(truth, float)
    n = len(advantage)
    k = round(share * n)
    tie_break = np.random.default_rng(seed).random(n)
    order = np.lexsort((tie_break, -np.asarray(advantage, float)))
    to_cloud = np.zeros(n, dtype=bool)
    to_cloud[order[:k]] = True
    rows = np.arange(n)
    return float(np.where(to_cloud, truth[:, -1], truth[rows, local_choice]).mean())


def cloud_share_curve(pred: np.ndarray, truth: np.ndarray, *, shares: np.ndarray | None = None, seed: int = 0) -> Curve:
    """Quality at each cloud share in `shares` (default 0, 0.01, …, 1)."""
    grid = np.linspace(0.0, 1.0, 101) if shares is None else np.asarray(shares, float)
    adv, local = cloud_advantage(pred)
    qual = np.array([quality_at_share(adv, local, truth, s, seed=seed) for s in grid])
    return Curve.sorted(grid, qual)
