"""Small outcome tables made in the tests: a hidden difficulty drives who answers right, and shows in the text."""

from __future__ import annotations

import numpy as np

from tierwise.outcomes import OutcomeTable

TOPICS = ["algebra", "history", "biology", "law", "poetry", "chemistry"]


def synthetic_table(n: int = 600, *, tiers: int = 2, seed: int = 0) -> OutcomeTable:
    """`tiers` models, weakest first; hard topics (and long prompts) defeat the weaker models more often."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, len(TOPICS), n)
    hardness = topic / (len(TOPICS) - 1)  # later topics are harder
    skill = np.linspace(0.2, 0.9, tiers)
    p = np.clip(1.2 - hardness[:, None] * (1.4 - skill[None, :]), 0.02, 0.98)
    scores = (rng.random((n, tiers)) < p).astype(float)
    queries = [f"question {i} about {TOPICS[t]}: " + " ".join([TOPICS[t]] * (1 + 3 * t)) for i, t in enumerate(topic)]
    return OutcomeTable(
        queries=queries,
        models=[f"tier{j}" for j in range(tiers)],
        scores=scores,
        categories=[TOPICS[t] for t in topic],
    )
