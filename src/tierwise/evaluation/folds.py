"""Train/test splits that never evaluate a router on what it trained on.

Rows are grouped by query id (a hash of the text unless the data gives ids), so two copies of one prompt always
land on the same side of a split: otherwise a nearest-neighbour router would "recall" the answer of its twin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierwise.outcomes import OutcomeTable


@dataclass(frozen=True)
class Split:
    """Row indices to train on and to evaluate on (disjoint, and no query id on both sides)."""

    train: np.ndarray
    test: np.ndarray


def _groups(table: OutcomeTable) -> tuple[np.ndarray, np.ndarray]:
    """(unique group keys, group index per row) from the table's query ids."""
    keys, inverse = np.unique(np.asarray(table.query_ids, dtype=object).astype(str), return_inverse=True)
    return keys, inverse


def kfold_splits(table: OutcomeTable, *, folds: int = 5, seed: int = 0) -> list[Split]:
    """k folds over groups of identical queries, shuffled with `seed`; each row is tested exactly once."""
    if folds < 2:
        raise ValueError("folds must be at least 2")
    keys, inverse = _groups(table)
    if len(keys) < folds:
        raise ValueError(f"{len(keys)} distinct queries cannot make {folds} folds")
    fold_of_group = np.empty(len(keys), dtype=int)
    fold_of_group[np.random.default_rng(seed).permutation(len(keys))] = np.arange(len(keys)) % folds
    fold_of_row = fold_of_group[inverse]
    rows = np.arange(len(table))
    return [Split(rows[fold_of_row != k], rows[fold_of_row == k]) for k in range(folds)]


def holdout_splits(table: OutcomeTable, *, train_size: int, seed: int = 0, repeats: int = 1) -> list[Split]:
    """`repeats` splits, each training on (about) `train_size` random rows and testing on all the others.

    Whole groups are drawn until `train_size` rows are reached, so a split may train on a few rows fewer.
    """
    keys, inverse = _groups(table)
    counts = np.bincount(inverse, minlength=len(keys))
    rows = np.arange(len(table))
    splits = []
    for r in range(repeats):
        order = np.random.default_rng(seed + r).permutation(len(keys))
        taken = order[np.cumsum(counts[order]) <= train_size]
        in_train = np.isin(inverse, taken)
        if not in_train.any() or in_train.all():
            raise ValueError(f"train_size={train_size} leaves nothing to train on or to test on")
        splits.append(Split(rows[in_train], rows[~in_train]))
    return splits


def check_split(table: OutcomeTable, split: Split) -> None:
    """Raise if a split trains on a row (or a copy of a query) that it also tests on."""
    if np.intersect1d(split.train, split.test).size:
        raise AssertionError("fold leak: a row is in both the training and the test set")
    _, inverse = _groups(table)
    if np.intersect1d(inverse[split.train], inverse[split.test]).size:
        raise AssertionError("fold leak: the same query text is in both the training and the test set")
