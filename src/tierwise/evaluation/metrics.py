"""Routing metrics: RouteLLM's PGR / APGR / CPT for two tiers, and an AIQ-style area for N tiers.

Two tiers follow RouteLLM's evaluation code (routellm/evals/benchmarks.py and evaluate.py) so that figures are
comparable with its published table:

- thresholds are the 11 edges of ``pd.qcut(scores, 10)`` — here ``np.quantile(scores, linspace(0, 1, 11))``,
  the same linear-interpolation quantiles;
- a query goes to the strong model if its score ≥ threshold, except for the last (largest) edge where the rule
  is score > threshold, so the curve runs from 100 % to 0 % strong calls;
- APGR = (AUC − weak_AUC) / (strong_AUC − weak_AUC), each AUC by the trapezoid rule over the achieved range of
  strong-call shares (as a fraction);
- CPT(x) = the smallest strong-call share at which PGR reaches x, by linear interpolation along the curve
  (RouteLLM uses ``np.interp(target, accuracy, share)``, which is the same when accuracy rises with the share).

Usage: ``curve = routellm_curve(score, weak, strong); apgr(curve, weak.mean(), strong.mean())``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_RESULTS = 10  # RouteLLM's --num-results: deciles of the router's scores


@dataclass(frozen=True)
class Curve:
    """Operating points of a router: share of calls to the costly side (x) and the quality reached (y).

    Points are sorted by `share` (ties keep sweep order).
    """

    share: np.ndarray
    quality: np.ndarray
    thresholds: np.ndarray | None = None

    @classmethod
    def sorted(cls, share: np.ndarray, quality: np.ndarray, thresholds: np.ndarray | None = None) -> Curve:
        order = np.argsort(share, kind="stable")
        th = None if thresholds is None else np.asarray(thresholds, dtype=float)[order]
        return cls(np.asarray(share, dtype=float)[order], np.asarray(quality, dtype=float)[order], th)


def routellm_thresholds(score: np.ndarray, *, num_results: int = NUM_RESULTS) -> np.ndarray:
    """The bin edges of ``pd.qcut(score, num_results)``: linear-interpolation quantiles, duplicates kept."""
    return np.quantile(np.asarray(score, dtype=float), np.linspace(0.0, 1.0, num_results + 1))


def routellm_curve(score: np.ndarray, weak: np.ndarray, strong: np.ndarray, *, num_results: int = NUM_RESULTS) -> Curve:
    """Strong-call share and quality at each of RouteLLM's decile thresholds of `score` (higher = strong)."""
    score, weak, strong = (np.asarray(a, dtype=float) for a in (score, weak, strong))
    thresholds = routellm_thresholds(score, num_results=num_results)
    shares, quals = [], []
    for i, t in enumerate(thresholds):
        to_strong = score >= t if i < len(thresholds) - 1 else score > t
        shares.append(float(to_strong.mean()))
        quals.append(float(np.where(to_strong, strong, weak).mean()))
    return Curve.sorted(np.array(shares), np.array(quals), thresholds)


def pgr(curve: Curve, weak_quality: float, strong_quality: float) -> np.ndarray:
    """Performance gap recovered at each point: (quality − weak) / (strong − weak)."""
    gap = strong_quality - weak_quality
    if gap == 0:
        raise ValueError("the strong and weak models have the same quality: PGR is undefined")
    return (curve.quality - weak_quality) / gap


def apgr(curve: Curve, weak_quality: float, strong_quality: float) -> float:
    """RouteLLM's APGR: trapezoid AUC over the achieved share range, normalised by the weak/strong AUCs."""
    x = curve.share
    span = float(x[-1] - x[0])
    if span <= 0:
        raise ValueError("the curve spans no range of strong-call shares")
    auc = float(np.trapezoid(curve.quality, x))
    weak_auc, strong_auc = weak_quality * span, strong_quality * span
    if strong_auc == weak_auc:
        raise ValueError("the strong and weak models have the same quality: APGR is undefined")
    return (auc - weak_auc) / (strong_auc - weak_auc)


def cpt(curve: Curve, weak_quality: float, strong_quality: float, level: float) -> float | None:
    """Call-performance threshold: the smallest strong-call share where PGR first reaches `level` (0–1).

    Linear interpolation between the last point below the target and the first point at or above it; None if
    the curve never reaches it.
    """
    target = weak_quality + level * (strong_quality - weak_quality)
    y, x = curve.quality, curve.share
    hits = np.flatnonzero(y >= target - 1e-12)
    if hits.size == 0:
        return None
    i = int(hits[0])
    if i == 0 or y[i] == y[i - 1]:
        return float(x[i])
    frac = (target - y[i - 1]) / (y[i] - y[i - 1])
    return float(x[i - 1] + frac * (x[i] - x[i - 1]))


def nondecreasing_hull(cost: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the non-decreasing upper convex hull of (cost, quality) points (RouterBench's AIQ hull).

    Mixing two operating points at random reaches any point on the segment between them, and a router can
    always spend more for no gain, hence the upper hull made non-decreasing.
    """
    order = np.lexsort((-np.asarray(quality, dtype=float), np.asarray(cost, dtype=float)))
    pts = [(float(cost[i]), float(quality[i])) for i in order]
    hull: list[tuple[float, float]] = []
    for p in pts:
        if hull and hull[-1][0] == p[0]:
            continue  # same cost: the first (highest quality) is kept
        if hull and p[1] <= hull[-1][1]:
            continue  # costs more for no gain: below the non-decreasing hull
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()  # hull[-1] lies on or below the segment hull[-2] → p
        hull.append(p)
    xs, ys = zip(*hull, strict=True)
    return np.array(xs), np.array(ys)


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def aiq(cost: np.ndarray, quality: np.ndarray, *, cost_range: tuple[float, float]) -> float:
    """Area under the non-decreasing convex hull over `cost_range`, divided by its width (a mean quality).

    Left of the router's cheapest point the hull is undefined and counts its first quality (every router sweep
    here includes the all-cheapest point, so this does not arise in practice); right of its costliest point the
    hull stays flat.
    """
    lo, hi = cost_range
    if hi <= lo:
        raise ValueError("cost_range must be increasing")
    hx, hy = nondecreasing_hull(cost, quality)
    grid = np.unique(np.clip(np.concatenate([hx, [lo, hi]]), lo, hi))
    return float(np.trapezoid(np.interp(grid, hx, hy), grid) / (hi - lo))
