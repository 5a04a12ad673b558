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


def combine_tables(tables: list[OutcomeTable]) -> OutcomeTable:
    """The rows of every table, one after another, over the union of their models (NaN where a table has no
    column for a model). Categories and answer texts are kept only where every table has them."""
    models = list(dict.fromkeys(m for t in tables for m in t.models))
    scores, tokens = [], []
    for t in tables:
        cols = [t.models.index(m) if m in t.models else -1 for m in models]
        s = np.full((len(t), len(models)), np.nan)
        k = np.full_like(s, np.nan)
        for j, c in enumerate(cols):
            if c >= 0:
                s[:, j] = t.scores[:, c]
                if t.output_tokens is not None:
                    k[:, j] = t.output_tokens[:, c]
        scores.append(s)
        tokens.append(k)
    all_tokens = np.vstack(tokens) if tokens else np.zeros((0, len(models)))
    cats = [t.categories for t in tables]
    return OutcomeTable(
        queries=[q for t in tables for q in t.queries],
        models=models,
        scores=np.vstack(scores) if scores else np.zeros((0, len(models))),
        categories=[c for cs in cats for c in cs] if all(c is not None for c in cats) else None,  # type: ignore[union-attr]
        output_tokens=None if np.isnan(all_tokens).all() else all_tokens,
        query_ids=[q for t in tables for q in t.query_ids],
    )


def mix_outcomes(data: OutcomeTable | None, labels: OutcomeTable | None, *, data_weight: float = 1.0,
                 seed: int = 0) -> OutcomeTable:
    """Training rows from an outcome file and the labels of one's own traffic.

    `data_weight` in (0, 1] is the share of the outcome file's rows kept (a random subset): how much the
    other domain's data counts next to the labels. Rows are subsampled rather than repeated or weighted, so
    cross-validation never sees one row in two folds and every predictor trains unchanged.
    """
    if not 0.0 < data_weight <= 1.0:
        raise ValueError(f"data_weight must be in (0, 1], got {data_weight}")
    parts = []
    if data is not None:
        keep = np.random.default_rng(seed).random(len(data)) < data_weight if data_weight < 1.0 else None
        parts.append(data if keep is None else data.subset(np.flatnonzero(keep)))
    if labels is not None:
        parts.append(labels)
    if not parts:
        raise ValueError("nothing to train on: give an outcome file, a decision log with labels, or both")
    return parts[0] if len(parts) == 1 else combine_tables(parts)


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
