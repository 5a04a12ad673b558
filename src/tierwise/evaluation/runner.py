"""The evaluation loop: fit each scorer on the training rows of each split, score it on the held-out rows only.

With k folds (`pool=True`) the held-out predictions of all folds are pooled, so every row is scored once by a
model that never saw it, and the metrics are computed on the whole table (as RouteLLM evaluates on the whole
benchmark); per-fold APGRs are kept too. With hold-out splits (`pool=False`) each split is scored on its own
and the metrics are averaged over splits.

Usage::

    table, info = prepare_table(load_outcomes(path), ["weak", "strong"], contaminated=prompts)
    results = run_evaluation(table, np.array([0.1, 1.0]), [scorer], kfold_splits(table, folds=5))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tierwise.evaluation.folds import Split, check_split
from tierwise.evaluation.scorers import (
    ALWAYS_BEST,
    ALWAYS_CHEAPEST,
    FixedTier,
    LengthScorer,
    OracleScorer,
    RandomScorer,
    Scorer,
    paid_costs,
)
from tierwise.evaluation.scoring import fixed_metrics, mean_metrics, router_metrics
from tierwise.outcomes import OutcomeTable

Advance = Callable[[str], None]  # called once per fitted (scorer, split), with the scorer's name
RANDOM_SEEDS = 10


def prepare_table(
    table: OutcomeTable, tiers: Sequence[str], *, contaminated: set[str] | None = None
) -> tuple[OutcomeTable, dict[str, Any]]:
    """Keep the tier columns (cheapest first), drop contaminated prompts and rows where a tier has no outcome."""
    selected = table.select_models(list(tiers))
    keep = selected.complete_rows()
    n_contaminated = 0
    if contaminated:
        clean = np.array([q not in contaminated for q in selected.queries], dtype=bool)
        n_contaminated = int((~clean).sum())
        keep &= clean
    out = selected.subset(np.flatnonzero(keep))
    info = {
        "rows_loaded": len(table),
        "rows_contaminated_dropped": n_contaminated,
        "rows_incomplete_dropped": int(len(table) - n_contaminated - len(out)),
        "rows_evaluated": len(out),
        "tier_quality": {m: round(float(out.scores[:, j].mean()), 6) for j, m in enumerate(out.models)},
    }
    return out, info


def _predict_splits(
    scorer: Scorer, table: OutcomeTable, splits: Sequence[Split], advance: Advance | None
) -> list[np.ndarray]:
    preds = []
    for split in splits:
        check_split(table, split)
        scorer.fit(table, split.train)
        pred = np.asarray(scorer.predict(table, split.test), dtype=float)
        if pred.shape != (len(split.test), len(table.models)):
            raise ValueError(f"{scorer.name} predicted shape {pred.shape} for {len(split.test)} rows")
        preds.append(pred)
        if advance:
            advance(scorer.name)
    return preds


def _pooled(splits: Sequence[Split], parts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.concatenate([s.test for s in splits])
    order = np.argsort(rows, kind="stable")
    return rows[order], np.concatenate(list(parts))[order]


def evaluate_scorer(
    scorer: Scorer,
    table: OutcomeTable,
    costs: np.ndarray,
    splits: Sequence[Split],
    *,
    pool: bool = True,
    advance: Advance | None = None,
) -> dict[str, Any]:
    """Metrics of one scorer from held-out predictions only (pooled over folds, or averaged over splits)."""
    preds = _predict_splits(scorer, table, splits, advance)
    costs = paid_costs(scorer, costs)
    per_split = [router_metrics(p, table.scores[s.test], costs) for s, p in zip(splits, preds, strict=True)]
    if not pool:
        return mean_metrics(per_split) | {"apgr_splits": [m["apgr"] for m in per_split]}
    rows, pred = _pooled(splits, preds)
    return router_metrics(pred, table.scores[rows], costs) | {"apgr_folds": [m["apgr"] for m in per_split]}


def evaluate_fixed(
    baseline: FixedTier, table: OutcomeTable, costs: np.ndarray, splits: Sequence[Split], *, pool: bool = True
) -> dict[str, Any]:
    """Metrics of a one-tier baseline; the tier is picked from the training rows of each split."""
    choices = [
        np.full(len(s.test), baseline.pick(table.scores[s.train] if len(s.train) else table.scores, costs))
        for s in splits
    ]
    if not pool:
        return mean_metrics(
            [fixed_metrics(c, table.scores[s.test], costs) for s, c in zip(splits, choices, strict=True)]
        )
    rows, choice = _pooled(splits, choices)
    return fixed_metrics(choice, table.scores[rows], costs)


def run_evaluation(
    table: OutcomeTable,
    costs: np.ndarray,
    scorers: Sequence[Scorer],
    splits: Sequence[Split],
    *,
    pool: bool = True,
    random_seeds: int = RANDOM_SEEDS,
    baselines: bool = True,
    advance: Advance | None = None,
) -> dict[str, dict[str, Any]]:
    """{router name: metrics} for every scorer and (unless `baselines=False`) the five baselines."""
    costs = np.asarray(costs, dtype=float)
    results: dict[str, dict[str, Any]] = {}
    for scorer in scorers:
        results[scorer.name] = {"kind": "router"} | evaluate_scorer(
            scorer, table, costs, splits, pool=pool, advance=advance
        )
    if not baselines:
        return results
    runs = [
        evaluate_scorer(RandomScorer(seed=s), table, costs, splits, pool=pool, advance=advance)
        for s in range(random_seeds)
    ]
    results["random"] = {"kind": "baseline", "seeds": random_seeds} | mean_metrics(runs)
    for fixed in (ALWAYS_CHEAPEST, ALWAYS_BEST):
        results[fixed.name] = {"kind": "baseline"} | evaluate_fixed(fixed, table, costs, splits, pool=pool)
    for base in (OracleScorer(), LengthScorer()):
        results[base.name] = {"kind": "baseline"} | evaluate_scorer(
            base, table, costs, splits, pool=pool, advance=advance
        )
    return results


def steps(n_scorers: int, n_splits: int, *, random_seeds: int = RANDOM_SEEDS, baselines: bool = True) -> int:
    """How many times `advance` will be called: the length of the progress bar."""
    return n_splits * (n_scorers + (random_seeds + 2 if baselines else 0))
