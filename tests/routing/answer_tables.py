"""Outcome tables with answer texts, made in the tests: a weak model whose shown arithmetic is wrong exactly
when (mostly) its answer is wrong, like Mixtral's on GSM8K."""

from __future__ import annotations

import numpy as np

from tierwise.outcomes import OutcomeTable


def answer_table(n: int = 300, *, seed: int = 7) -> OutcomeTable:
    """Models "weak" (with answers) and "strong"; the weak answer's arithmetic is wrong when it is wrong (and in
    20 % of the right ones' stead, to keep the signal imperfect)."""
    rng = np.random.default_rng(seed)
    queries, answers, scores = [], [], []
    for i in range(n):
        a, b = int(rng.integers(2, 50)), int(rng.integers(2, 50))
        weak_right = bool(rng.random() < 0.6)
        shown = a * b if (weak_right or rng.random() < 0.2) else a * b + int(rng.integers(1, 9))
        queries.append(f"question {i}: what is {a} times {b}?")
        answers.append(f"{a} * {b} = <<{a}*{b}={shown}>>{shown}\n#### {shown}")
        scores.append([float(weak_right), float(rng.random() < 0.9)])
    return OutcomeTable(
        queries=queries, models=["weak", "strong"], scores=np.array(scores), responses={"weak": answers}
    )
