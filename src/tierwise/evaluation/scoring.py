"""All the metrics of one router on one evaluation set, as a JSON-able dict (what results.json holds).

Tiers are the columns of `truth`, cheapest first; the last is "cloud" (the strong model when there are two).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tierwise.evaluation.metrics import aiq, apgr, cpt, pgr, routellm_curve
from tierwise.evaluation.sweeps import CLOUD_SHARES, cloud_advantage, cost_quality_sweep, quality_at_share

CPT_LEVELS = (0.5, 0.8, 0.95)


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _two_tier(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    weak_q, strong_q = float(truth[:, 0].mean()), float(truth[:, 1].mean())
    curve = routellm_curve(pred[:, 1] - pred[:, 0], truth[:, 0], truth[:, 1])
    out: dict[str, Any] = {"apgr": _r(apgr(curve, weak_q, strong_q))}
    for level in CPT_LEVELS:
        out[f"cpt{round(level * 100)}"] = _r(cpt(curve, weak_q, strong_q, level))
    out["pgr_curve"] = {
        "strong_share": [_r(x) for x in curve.share],
        "quality": [_r(x) for x in curve.quality],
        "pgr": [_r(x) for x in pgr(curve, weak_q, strong_q)],
    }
    return out


def _at_shares(pred: np.ndarray, truth: np.ndarray, *, seed: int) -> dict[str, Any]:
    adv, local = cloud_advantage(pred)
    cloud_q = float(truth[:, -1].mean())
    q = {s: quality_at_share(adv, local, truth, s, seed=seed) for s in CLOUD_SHARES}
    grid = np.linspace(0.0, 1.0, 21)
    return {
        "quality_at_cloud_share": {str(s): _r(v) for s, v in q.items()},
        "relative_quality_at_cloud_share": {str(s): _r(v / cloud_q) for s, v in q.items()},
        "cloud_share_curve": {
            "cloud_share": [_r(s) for s in grid],
            "quality": [_r(quality_at_share(adv, local, truth, s, seed=seed)) for s in grid],
        },
    }


def router_metrics(pred: np.ndarray, truth: np.ndarray, costs: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """PGR/APGR/CPT (two tiers only), quality at fixed cloud shares, and the cost–quality sweep with its AIQ."""
    pred, truth, costs = np.asarray(pred, float), np.asarray(truth, float), np.asarray(costs, float)
    out: dict[str, Any] = {"n": len(truth)}
    if truth.shape[1] == 2:
        out |= _two_tier(pred, truth)
    else:
        out |= {"apgr": None, "cpt50": None, "cpt80": None, "cpt95": None}
    out |= _at_shares(pred, truth, seed=seed)
    sweep = cost_quality_sweep(pred, truth, costs)
    out["aiq"] = _r(aiq(sweep.cost, sweep.quality, cost_range=(float(costs.min()), float(costs.max()))))
    out["cost_curve"] = {
        "cost": [_r(x) for x in sweep.cost],
        "quality": [_r(x) for x in sweep.quality],
        "tier_share": [[_r(x) for x in row] for row in sweep.tier_share],
    }
    return out


def fixed_metrics(choice: np.ndarray, truth: np.ndarray, costs: np.ndarray) -> dict[str, Any]:
    """Metrics of a single operating point (one tier per query, no knob): no curve, so no APGR/CPT/AIQ."""
    truth, costs, choice = np.asarray(truth, float), np.asarray(costs, float), np.asarray(choice, int)
    rows = np.arange(len(truth))
    quality = float(truth[rows, choice].mean())
    shares = np.bincount(choice, minlength=truth.shape[1]) / len(truth)
    return {
        "n": len(truth),
        "apgr": None,
        "cpt50": None,
        "cpt80": None,
        "cpt95": None,
        "aiq": None,
        "quality_at_cloud_share": {},
        "quality": _r(quality),
        "relative_quality": _r(quality / float(truth[:, -1].mean())),
        "cost": _r(float(costs[choice].mean())),
        "tier_share": [_r(x) for x in shares],
    }


def mean_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Element-wise mean of metric dicts of the same shape (None stays None); lists of unequal length and
    strings are taken from the first run."""
    first = runs[0]
    if len(runs) == 1:
        return first
    out: dict[str, Any] = {}
    for key, val in first.items():
        vals = [r.get(key) for r in runs]
        if isinstance(val, dict):
            out[key] = mean_metrics([v for v in vals if isinstance(v, dict)])
        elif isinstance(val, list) and all(isinstance(v, list) and len(v) == len(val) for v in vals):
            out[key] = _mean_lists(vals)
        elif isinstance(val, (int, float)) and not isinstance(val, bool):
            out[key] = _mean_scalar(vals)
        else:
            out[key] = val
    return out


def _mean_lists(runs: list[Any]) -> list[Any]:
    """Column-wise mean of equally long (possibly nested) lists, one per run."""
    cols = [list(col) for col in zip(*runs, strict=True)]
    return [_mean_lists(c) if isinstance(c[0], list) else _mean_scalar(c) for c in cols]


def _mean_scalar(vals: list[Any]) -> float | None:
    nums = [float(v) for v in vals if v is not None]
    return _r(float(np.mean(nums))) if len(nums) == len(vals) else None
