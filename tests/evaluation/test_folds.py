"""Splits never test on what they trained on, and the runner would notice if they did."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from tierwise.evaluation.folds import Split, check_split, holdout_splits, kfold_splits
from tierwise.evaluation.runner import evaluate_scorer
from tierwise.evaluation.scoring import router_metrics
from tierwise.outcomes import OutcomeTable

from .tables import synthetic_table


@dataclass
class Memorizer:
    """Recalls the outcomes of queries it trained on (by text); predicts the training mean otherwise."""

    name: str = "memorizer"
    seen: dict[str, np.ndarray] = field(default_factory=dict)
    mean: np.ndarray | None = None

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        self.seen = {table.queries[i]: table.scores[i] for i in rows}
        self.mean = table.scores[rows].mean(axis=0)

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
        assert self.mean is not None
        return np.array([self.seen.get(table.queries[i], self.mean) for i in rows], dtype=float)


def test_kfold_partitions_rows_and_keeps_copies_together() -> None:
    table = synthetic_table(200)
    doubled = table.subset(np.concatenate([np.arange(200), np.arange(200)]))  # every query twice
    splits = kfold_splits(doubled, folds=5, seed=1)
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == list(range(400))
    for s in splits:
        check_split(doubled, s)
        test_texts = {doubled.queries[i] for i in s.test}
        assert not test_texts & {doubled.queries[i] for i in s.train}


def test_holdout_trains_on_at_most_train_size() -> None:
    table = synthetic_table(300)
    (split,) = holdout_splits(table, train_size=50, seed=3)
    assert 45 <= len(split.train) <= 50 and len(split.train) + len(split.test) == 300
    check_split(table, split)


def test_check_split_catches_a_leak() -> None:
    table = synthetic_table(50)
    with pytest.raises(AssertionError, match="fold leak"):
        check_split(table, Split(np.arange(30), np.arange(20, 50)))
    doubled = table.subset(np.concatenate([np.arange(50), np.arange(50)]))
    with pytest.raises(AssertionError, match="same query text"):
        check_split(doubled, Split(np.arange(50), np.arange(50, 100)))


def test_a_memorizing_router_gains_nothing_from_held_out_folds() -> None:
    # were any test row (or a copy of its text) trained on, the memorizer would route like the oracle
    table = synthetic_table(400, seed=2)
    doubled = table.subset(np.concatenate([np.arange(400), np.arange(400)]))
    costs = np.array([0.1, 1.0])
    held_out = evaluate_scorer(Memorizer(), doubled, costs, kfold_splits(doubled, folds=5))
    leaky = [Split(np.arange(800), np.arange(800))]
    with pytest.raises(AssertionError, match="fold leak"):
        evaluate_scorer(Memorizer(), doubled, costs, leaky)
    trained_on_test = Memorizer()
    trained_on_test.fit(doubled, np.arange(800))
    cheat = trained_on_test.predict(doubled, np.arange(800))
    assert router_metrics(cheat, doubled.scores, costs)["apgr"] > 0.8  # what a leak would look like
    assert held_out["apgr"] == pytest.approx(0.5, abs=0.05)
    assert len(held_out["apgr_folds"]) == 5
