"""Training a router file from an outcome table: featurize, cross-validate predictors, calibrate, fit.

Usage::

    tiers = parse_tiers("device=Phi-3-mini-4k-instruct,edge=Llama-3.1-8B-Instruct,cloud=Llama-3.1-70B-Instruct")
    rf = train_router(load_outcomes(path), tiers, target_cloud_share=0.2)
    rf.save("router.json")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tierwise.costs import DEFAULT_OUTPUT_TOKENS
from tierwise.outcomes import OutcomeTable
from tierwise.routing.calibrate import cloud_margins, cloud_share, tolerance_for_share
from tierwise.routing.embed import EmbeddingCache
from tierwise.routing.features import Featurizer, FeaturizerSettings
from tierwise.routing.predictors import make_predictor
from tierwise.routing.router_file import RouterFile, TierSpec
from tierwise.routing.selection import CandidateResult, select_predictor

LOCATIONS = ("device", "edge", "cloud")
# USD per 1M input / output tokens when none are given (the example config's edge and cloud prices)
DEFAULT_PRICES: dict[str, tuple[float, float]] = {"device": (0.0, 0.0), "edge": (0.02, 0.06), "cloud": (0.55, 2.19)}


def parse_tiers(spec: str, *, prices: dict[str, tuple[float, float]] | None = None) -> list[TierSpec]:
    """``device=MODEL,edge=MODEL,cloud=MODEL``; a tier named otherwise gives its location: ``phone@device=M``.

    `prices` maps tier name → (input, output) USD per 1M tokens; missing tiers get `DEFAULT_PRICES`.
    """
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, model = part.partition("=")
        if not sep or not model:
            raise ValueError(f"tier {part!r} is not NAME=MODEL")
        name, _, location = name.partition("@")
        location = location or name
        if location not in LOCATIONS:
            raise ValueError(f"tier {name!r}: location must be one of {LOCATIONS} (write NAME@LOCATION=MODEL)")
        inp, outp = (prices or {}).get(name, DEFAULT_PRICES[location])
        out.append(TierSpec(name=name, model=model, location=location, input_per_mtok=inp, output_per_mtok=outp))
    if len({t.name for t in out}) != len(out):
        raise ValueError("tier names must be unique")
    return out


def _expected_output_tokens(table: OutcomeTable) -> list[float]:
    if table.output_tokens is None:
        return [float(DEFAULT_OUTPUT_TOKENS)] * len(table.models)
    means = [np.nanmean(c) if np.isfinite(c).any() else np.nan for c in table.output_tokens.T]
    return [float(m) if np.isfinite(m) else float(DEFAULT_OUTPUT_TOKENS) for m in means]


def train_router(
    table: OutcomeTable,
    tiers: list[TierSpec],
    *,
    target_cloud_share: float = 0.2,
    featurizer: FeaturizerSettings | None = None,
    grid: dict[str, list[dict[str, Any]]] | None = None,
    folds: int = 3,
    seed: int = 0,
    cache_dir: str | None = None,
    progress: bool = False,
    on_candidate: Callable[[CandidateResult], None] | None = None,
) -> RouterFile:
    """Fit a router for `tiers` on `table`; the tolerance is calibrated on out-of-fold predictions."""
    sub = table.select_models([t.model for t in tiers])
    sub = sub.subset(np.flatnonzero(~np.isnan(sub.scores).all(axis=1)))
    settings = featurizer or FeaturizerSettings()
    X = Featurizer(settings, cache=EmbeddingCache(cache_dir)).transform(sub.queries, progress=progress)
    best, results, oof = select_predictor(X, sub.scores, grid=grid, folds=folds, seed=seed, on_candidate=on_candidate,
                                          categories=sub.categories)
    margins = cloud_margins(oof, [t.location == "cloud" for t in tiers])
    tolerance = tolerance_for_share(margins, target_cloud_share)
    final = make_predictor(best.name, **best.params).fit(X, sub.scores, categories=sub.categories)
    params, arrays = final.to_state()
    for t, tokens in zip(tiers, _expected_output_tokens(sub), strict=True):
        t.expected_output_tokens = tokens
    return RouterFile(
        tiers=tiers,
        featurizer=settings,
        predictor=params,
        predictor_arrays=arrays,
        tolerance=tolerance,
        target_cloud_share=target_cloud_share,
        heldout_margins=margins.astype(np.float32),
        calibration={"heldout_cloud_share": cloud_share(margins, tolerance), "heldout": f"{folds}-fold out-of-fold"},
        training={
            "rows": len(sub),
            "model_mean_scores": sub.mean_scores(),
            "cross_validation": [r.to_dict() for r in results],
            "chosen": best.to_dict(),
        },
    )
