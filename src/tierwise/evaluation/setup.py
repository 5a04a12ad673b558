"""What `tierwise eval` evaluates: tiers and costs, contaminated-prompt lists, features, and the scorers.

Tiers are given cheapest first as ``MODEL[=COST]``; without costs, tier i of m costs 10^(i − m + 1) per call
(…, 0.01, 0.1, 1: each tier ten times the one below), a stand-in for real prices.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.evaluation.runner import prepare_table
from tierwise.evaluation.scorers import FeatureFn, PredictorScorer, Scorer
from tierwise.outcomes import OutcomeTable, load_contaminated_prompts, load_outcomes

CONTAMINATED_FILE = "contaminated_prompts.jsonl"


def default_costs(m: int) -> np.ndarray:
    """10^(i − m + 1) for tier i of m: each tier ten times the price of the one below it."""
    return np.array([10.0 ** (i - m + 1) for i in range(m)])


def parse_tiers(spec: str) -> tuple[list[str], np.ndarray]:
    """``"a=0.1,b=1"`` → (["a", "b"], [0.1, 1.0]); a missing cost takes `default_costs`' value.

    Model names may contain '/', '-', ':' and '.'; the cost is whatever follows the last '='.
    """
    names, costs = [], []
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) < 2:
        raise ValueError("--tiers needs at least two models, cheapest first")
    defaults = default_costs(len(parts))
    for i, part in enumerate(parts):
        name, sep, cost = part.rpartition("=")
        names.append(name if sep else cost)
        costs.append(float(cost) if sep else defaults[i])
    arr = np.array(costs, dtype=float)
    if np.any(np.diff(arr) < 0):
        raise ValueError(f"tiers must be listed cheapest first; costs {costs} are not non-decreasing")
    return names, arr


def default_tiers(table: OutcomeTable) -> tuple[list[str], np.ndarray]:
    """All models of the table, weakest (by mean quality) first, with `default_costs`."""
    means = table.mean_scores()
    names = sorted(table.models, key=lambda m: means[m])
    return names, default_costs(len(names))


def find_contaminated(data: Path) -> Path | None:
    """RouteLLM keeps ``contaminated_prompts.jsonl`` beside its CSVs: use it when it is there."""
    folder = data if data.is_dir() else data.parent
    candidate = folder / CONTAMINATED_FILE
    return candidate if candidate.exists() else None


def evaluation_table(data: Path, tiers: Sequence[str] | None = None) -> OutcomeTable:
    """What `tierwise eval` evaluates by default, for scripts: `tiers` (default: every model, weakest first),
    rows without every outcome dropped, and the contaminated prompts listed beside the data dropped."""
    raw = load_outcomes(data)
    names = list(tiers) if tiers is not None else default_tiers(raw)[0]
    contaminated = find_contaminated(data)
    return prepare_table(raw, names, contaminated=load_contaminated_prompts(contaminated) if contaminated else None)[0]


def hashing_features(table: OutcomeTable, *, dim: int = 1024) -> np.ndarray:
    """Hashed bag of words and word bigrams, L2-normalised: a featurizer with no model to load."""
    X = np.zeros((len(table), dim), dtype=np.float32)
    for i, text in enumerate(table.queries):
        words = re.findall(r"\w+", text.lower())
        for tok in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
            X[i, _stable_hash(tok) % dim] += 1.0
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _stable_hash(token: str) -> int:
    # Python's hash() is salted per process; features must not change between runs
    h = 2166136261
    for b in token.encode("utf-8"):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def embedding_features(embedding: str, cache_dir: Path | None) -> FeatureFn:
    """The routing featurizer (MiniLM ``static`` or ``contextual`` embedding, or ``none``, plus surface
    features), cached on disk by text so a data set is embedded once."""

    def features(table: OutcomeTable) -> np.ndarray:
        from tierwise.routing.embed import EmbeddingCache, default_cache_dir  # lazy: loads MiniLM's weights
        from tierwise.routing.features import Featurizer, FeaturizerSettings

        cache = EmbeddingCache(cache_dir or default_cache_dir())
        featurizer = Featurizer(FeaturizerSettings(embedding=embedding), cache=cache)  # type: ignore[arg-type]
        return np.asarray(featurizer.transform(table.queries, progress=True))

    return features


FEATURES: dict[str, Callable[[Path | None], FeatureFn]] = {
    "static": lambda cache: embedding_features("static", cache),
    "contextual": lambda cache: embedding_features("contextual", cache),
    "none": lambda cache: embedding_features("none", cache),
    "hashing": lambda _cache: hashing_features,
}


def cheapest_answers(table: OutcomeTable) -> list[str]:
    """The answer texts of the table's cheapest tier (what a cascade reads); ValueError when it holds none."""
    first = table.models[0]
    answers = (table.responses or {}).get(first)
    if not answers:
        raise ValueError(
            f"the data holds no answers of the cheapest tier {first!r} to cascade from "
            "(RouteLLM's GSM8K has <model>_response columns; generic tables a 'response' field)"
        )
    return answers


def cascade_features(table: OutcomeTable) -> np.ndarray:
    """What a cascade sees (`tierwise.routing.cascade.cascade_features`) for every row of `table`."""
    from tierwise.routing.cascade import cascade_features as features_of

    rows = [features_of(q, a) for q, a in zip(table.queries, cheapest_answers(table), strict=True)]
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def evaluation_predictors() -> dict[str, type]:
    """The routing predictors' registry: what `tierwise train` can fit, the evaluation compares."""
    from tierwise.routing.predictors import PREDICTORS

    return dict(PREDICTORS)


def predictor_scorers(
    spec: str, *, features: str = "static", cache_dir: Path | None = None, cascade: bool = False
) -> list[Scorer]:
    """One scorer per predictor name in `spec` ('all', 'none', or 'knn,logistic,…'), sharing one feature fn;
    with `cascade`, each predictor is also scored as a cascade ("cascade:<name>", on `cascade_features`)."""
    if spec == "none":
        return []
    registry = evaluation_predictors()
    names = sorted(registry) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    if features not in FEATURES:
        raise KeyError(f"unknown features {features!r}; valid: {', '.join(FEATURES)}")
    feat = _shared(FEATURES[features](cache_dir))
    answers = _shared(cascade_features)
    scorers: list[Scorer] = []
    for name in names:
        if name not in registry:  # fail now, with the list of valid names, rather than after a long run
            raise KeyError(f"unknown predictor {name!r}; valid: {', '.join(sorted(registry))}")

        def factory(cls: type = registry[name]) -> Any:
            return cls()

        scorers.append(PredictorScorer(name=name, factory=factory, features=feat))
        if cascade:
            scorers.append(PredictorScorer(name=f"cascade:{name}", factory=factory, features=answers, cascade=True))
    return scorers


def _shared(fn: FeatureFn) -> FeatureFn:
    """Compute features once per table object, however many scorers ask."""
    memo: dict[int, np.ndarray] = {}

    def features(table: OutcomeTable) -> np.ndarray:
        if id(table) not in memo:
            memo[id(table)] = fn(table)
        return memo[id(table)]

    return features


@dataclass
class RouterFileScorer:
    """A trained router file (`tierwise train`'s router.json) as a scorer: never fitted here."""

    path: Path
    cache_dir: Path | None = None
    name: str = "router"

    def tier_models(self) -> list[str]:
        from tierwise.routing.router_file import RouterFile

        return [t.model for t in RouterFile.load(self.path).tiers]

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        return None

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> np.ndarray:
        from tierwise.routing.learned import LearnedRouter

        router = LearnedRouter.from_path(self.path, cache_dir=self.cache_dir)
        return np.asarray(router.predict_quality([table.queries[i] for i in rows]), dtype=float)


def router_file_scorer(path: Path, *, cache_dir: Path | None = None) -> RouterFileScorer:
    """The router file at `path` as a scorer named after its file."""
    return RouterFileScorer(path, cache_dir, name=f"router:{path.stem}")
