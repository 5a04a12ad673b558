"""Calibration: the quality tolerance that sends a target share of requests to the cloud.

The decision rule (see `decision.choose_tier`) picks the cheapest tier whose predicted quality is within
`tolerance` of the best allowed tier. With every tier allowed, a request goes to the cloud exactly when its
*cloud margin* — best predicted cloud quality minus best predicted non-cloud quality — exceeds the tolerance.
So the tolerance for a target share s is the (1 − s) quantile of the margins on held-out predictions.
Usage: ``tol = tolerance_for_share(cloud_margins(pred, is_cloud), 0.2)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cloud_margins(predicted: np.ndarray, is_cloud: Sequence[bool]) -> np.ndarray:
    """Per query: max predicted quality over cloud tiers minus max over the other tiers (columns)."""
    cloud = np.asarray(is_cloud, dtype=bool)
    if cloud.all() or not cloud.any():
        raise ValueError("calibration needs at least one cloud tier and one non-cloud tier")
    return np.asarray(predicted[:, cloud].max(axis=1) - predicted[:, ~cloud].max(axis=1))


def cloud_share(margins: np.ndarray, tolerance: float) -> float:
    """The share of queries the rule sends to the cloud at this tolerance."""
    return float(np.mean(margins > tolerance)) if len(margins) else 0.0


def tolerance_for_share(margins: np.ndarray, target_share: float) -> float:
    """The smallest tolerance ≥ 0 whose cloud share is at most `target_share` (in [0, 1]).

    A tolerance below 0 would send requests to a tier predicted *worse* than a cheaper one, so the share is
    capped at the share of queries whose best tier is a cloud tier; `cloud_share` reports what is reached.
    """
    if not 0.0 <= target_share <= 1.0:
        raise ValueError(f"target share must be in [0, 1], got {target_share}")
    if len(margins) == 0:
        raise ValueError("no held-out margins to calibrate on")
    if target_share <= 0.0:
        return float(max(np.max(margins), 0.0))
    # the (1 - s) quantile: a share s of margins lies strictly above it ("lower" keeps it a data point)
    tol = float(np.quantile(margins, 1.0 - target_share, method="lower"))
    return max(tol, 0.0)
