"""What else was tried on RouteLLM's MMLU, beyond `tierwise eval`'s predictors: figures for bench/RESULTS.md.

Same rows (decontaminated, 14,037), same 5 folds (seed 0) and the same APGR code as `tierwise eval`; held-out
scores pooled. Each router scores a query by predicted P(strong right) − P(weak right):

- domain mean: the training rows' mean gain of the query's MMLU domain, nothing else;
- tf-idf + domain: 3-class logistic regression (strong gains / tie / strong loses) on word uni+bigrams + domain;
- embedding + domain: the same on the MiniLM embedding (``--features``, cached on disk) + domain;
- domain-knn: tierwise's predictor (shrunk domain mean + kNN residual);
- rank ensemble: the mean of the three learned scores' ranks.

It also prints how much surface features say about the *within-domain* gain (correlation with the residual),
which bounds what any text feature can add to the domain mean.

    python bench/mmlu_probe.py [--features contextual] [--data ../shared/datasets/routellm/mmlu]

Needs scikit-learn (in the dev extra). Takes ≈ 5–10 min on two cores once the embeddings are cached.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tierwise.evaluation.folds import kfold_splits
from tierwise.evaluation.metrics import apgr, routellm_curve
from tierwise.evaluation.setup import embedding_features, evaluation_table
from tierwise.outcomes import OutcomeTable
from tierwise.routing.predictors.domain_knn import DomainKnnPredictor

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "routellm" / "mmlu"
FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train rows, test rows) → scores of test rows


def _pooled_apgr(table: OutcomeTable, fit_predict: FitPredict) -> tuple[float, np.ndarray]:
    score = np.zeros(len(table))
    for split in kfold_splits(table, folds=5, seed=0):
        score[split.test] = fit_predict(split.train, split.test)
    y = table.scores
    return apgr(routellm_curve(score, y[:, 0], y[:, 1]), y[:, 0].mean(), y[:, 1].mean()), score


def _three_class(features: object, gain: np.ndarray, c: float) -> FitPredict:
    from sklearn.linear_model import LogisticRegression

    label = (gain + 1).astype(int)  # 0: strong loses, 1: tie, 2: strong gains

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = LogisticRegression(C=c, max_iter=3000).fit(features[train], label[train])  # type: ignore[index]
        p = model.predict_proba(features[test])  # type: ignore[index]
        return np.asarray(p[:, 2] - p[:, 0])

    return fit_predict


def _surface(query: str) -> dict[str, float]:
    stem, *options = re.split(r"\n(?=[A-D]\. )", query)
    return {
        "digit share": sum(ch.isdigit() for ch in query) / len(query),
        "numeric options": float(np.mean([bool(re.search(r"\d", o)) for o in options])) if options else 0.0,
        "NOT/EXCEPT/LEAST": float(bool(re.search(r"\bNOT\b|\bEXCEPT\b|\bLEAST\b", query))),
        "log stem length": float(np.log(len(stem) + 1)),
        "log option length": float(np.log1p(np.mean([len(o) for o in options]))) if options else 0.0,
    }


def main() -> None:
    from scipy.sparse import csr_matrix, hstack
    from scipy.stats import rankdata
    from sklearn.feature_extraction.text import TfidfVectorizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--features", default="contextual", choices=["static", "contextual"])
    args = parser.parse_args()
    table = evaluation_table(args.data)
    gain = table.scores[:, 1] - table.scores[:, 0]
    cats = np.asarray(table.categories)
    domains = np.unique(cats)
    onehot = csr_matrix((cats[:, None] == domains[None, :]).astype(float) * 3.0)
    emb = np.asarray(embedding_features(args.features, None)(table))[:, :384]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(table.queries)

    def domain_mean(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        means = {d: gain[train][cats[train] == d].mean() for d in np.unique(cats[train])}
        return np.array([means.get(d, gain[train].mean()) for d in cats[test]])

    def domain_knn(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = DomainKnnPredictor().fit(emb[train], table.scores[train], categories=list(cats[train]))
        p = model.predict(emb[test], categories=list(cats[test]))
        return np.asarray(p[:, 1] - p[:, 0])

    routers: dict[str, FitPredict] = {
        "domain mean": domain_mean,
        "domain-knn": domain_knn,
        "tf-idf + domain": _three_class(hstack([words, onehot]).tocsr(), gain, 1.0),
        f"embedding ({args.features}) + domain": _three_class(hstack([csr_matrix(emb), onehot]).tocsr(), gain, 0.3),
    }
    scores = {}
    print(f"| router (MMLU, {len(table):,} rows, 5-fold) | APGR |\n|---|---|")
    for name, fit_predict in routers.items():
        value, scores[name] = _pooled_apgr(table, fit_predict)
        print(f"| {name} | {value:.3f} |", flush=True)
    learned = [s for name, s in scores.items() if name != "domain mean"]
    y = table.scores
    ranks = sum(rankdata(s) for s in learned) / len(table)
    ensemble = apgr(routellm_curve(ranks, y[:, 0], y[:, 1]), y[:, 0].mean(), y[:, 1].mean())
    print(f"| rank ensemble of the three learned | {ensemble:.3f} |")
    residual = gain - np.array([gain[cats == d].mean() for d in cats])
    surface = [_surface(q) for q in table.queries]
    print("\nwithin-domain gain (gain − its domain's mean) against surface features, Pearson r:")
    for key in surface[0]:
        values = np.array([s[key] for s in surface])
        print(f"  {key:18s} {np.corrcoef(values, residual)[0, 1]:+.3f}")


if __name__ == "__main__":
    main()
