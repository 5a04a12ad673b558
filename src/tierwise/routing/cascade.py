"""A cascade's check: is a cheaper tier's answer good enough to return, or should the request go up a tier?

Trained from outcome logs that hold the cheaper model's answers (RouteLLM's GSM8K file, or a generic table with
a ``response`` field): a logistic regression of "the answer was right" on the signals of
`tierwise.routing.answer_signals` plus the query's surface features. The escalation threshold is set on held-out
predictions so that a chosen share of answers escalates. The file is plain JSON (a few dozen numbers)::

    {"format": "tierwise-cascade", "version": 1, "model": "...", "features": [...],
     "mean": [...], "std": [...], "weights": [...], "bias": 0.3, "threshold": 0.52, "training": {...}}

Usage::

    check = train_cascade(table, "mistralai/Mixtral-8x7B-Instruct-v0.1", escalate_share=0.3)
    check.save("cascade.json")
    escalate, p_good = CascadeCheck.load("cascade.json").should_escalate(question, answer)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.outcomes import OutcomeTable
from tierwise.routing.answer_signals import (
    ANSWER_FEATURES,
    CONFIDENCE_FEATURES,
    AnswerConfidence,
    answer_features,
    confidence_features,
)
from tierwise.routing.features import CHEAP_FEATURES, cheap_features
from tierwise.routing.predictors.linear import LogisticPredictor
from tierwise.routing.selection import fold_ids, out_of_fold

FORMAT = "tierwise-cascade"
VERSION = 1
FEATURE_NAMES = (*ANSWER_FEATURES, *CONFIDENCE_FEATURES, *(f"query_{name}" for name in CHEAP_FEATURES))
# files written before the device tier's confidence joined the features: read with zero weight on it
_FEATURES_WITHOUT_CONFIDENCE = (*ANSWER_FEATURES, *(f"query_{name}" for name in CHEAP_FEATURES))


def cascade_features(question: str, answer: str, confidence: AnswerConfidence | None = None) -> np.ndarray:
    """What the check reads: the answer's signals, the serving model's confidence in it (zeros where the tier
    reports none), then the question's surface features (`FEATURE_NAMES`)."""
    return np.concatenate(
        [answer_features(question, answer), confidence_features(confidence), cheap_features(question)]
    )


@dataclass
class CascadeCheck:
    """P(answer good) from its features; escalate when it is below `threshold`."""

    model: str  # the model whose answers it was trained on
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float
    training: dict[str, Any] = field(default_factory=dict)

    def p_good(self, question: str, answer: str, confidence: AnswerConfidence | None = None) -> float:
        z = (cascade_features(question, answer, confidence) - self.mean) / self.std
        return float(1.0 / (1.0 + np.exp(-(z @ self.weights + self.bias))))

    def should_escalate(
        self,
        question: str,
        answer: str,
        *,
        threshold: float | None = None,
        confidence: AnswerConfidence | None = None,
    ) -> tuple[bool, float]:
        """(escalate?, P(answer good)); `threshold` overrides the trained one; `confidence` is the serving
        tier's (the device tier reports it: `LlamaCppTier.confidence`)."""
        p = self.p_good(question, answer, confidence)
        return p < (self.threshold if threshold is None else threshold), p

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "features": list(FEATURE_NAMES),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "threshold": self.threshold,
            "training": self.training,
        }
        p.write_text(json.dumps(doc, indent=2) + "\n")
        return p

    @classmethod
    def load(cls, path: str | Path) -> CascadeCheck:
        """Read a cascade file; a file of another format or feature set raises ValueError saying which."""
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError(f"{path} is not a {FORMAT} file (version {VERSION})")
        arrays = {k: np.asarray(doc[k], dtype=np.float64) for k in ("mean", "std", "weights")}
        if tuple(doc["features"]) == _FEATURES_WITHOUT_CONFIDENCE:
            at, n = len(ANSWER_FEATURES), len(CONFIDENCE_FEATURES)
            fill = {"mean": 0.0, "std": 1.0, "weights": 0.0}
            arrays = {k: np.insert(v, at, np.full(n, fill[k])) for k, v in arrays.items()}
        elif tuple(doc["features"]) != FEATURE_NAMES:
            raise ValueError(f"{path} was trained on other features than this tierwise computes; retrain it")
        return cls(
            doc["model"],
            bias=float(doc["bias"]),
            threshold=float(doc["threshold"]),
            **arrays,
            training=doc.get("training", {}),
        )


def train_cascade(
    table: OutcomeTable,
    model: str,
    *,
    escalate_share: float = 0.3,
    folds: int = 5,
    l2: float = 10.0,
    seed: int = 0,
    confidences: list[AnswerConfidence | None] | None = None,
) -> CascadeCheck:
    """Fit the check on `model`'s answers and outcomes; the threshold escalates `escalate_share` of the
    held-out (k-fold) predictions. Rows without an answer text or an outcome are left out. `confidences`
    (one per row, from a decision log: `traffic.labels.cascade_table`) is the model's own confidence in each
    answer; without it the confidence features are zero and get no weight."""
    if confidences is not None and len(confidences) != len(table):
        raise ValueError("confidences must hold one entry per row of the table")
    if not 0.0 <= escalate_share <= 1.0:
        raise ValueError("escalate_share must be in [0, 1]")
    answers = (table.responses or {}).get(model)
    if answers is None:
        raise ValueError(f"the table holds no answers of {model!r}; models with answers: {list(table.responses or {})}")
    y_all = table.scores[:, table.models.index(model)]
    rows = np.flatnonzero(~np.isnan(y_all) & np.array([bool(a) for a in answers]))
    if len(rows) < 2 * folds:
        raise ValueError(f"only {len(rows)} rows have both an answer and an outcome of {model!r}")
    conf = confidences or [None] * len(table)
    X = np.stack([cascade_features(table.queries[i], answers[i], conf[i]) for i in rows])
    y = y_all[rows]
    # the same out-of-fold machinery as the router's model selection
    held_out = out_of_fold(lambda: LogisticPredictor(l2=l2), X, y[:, None], fold_ids(len(rows), folds, seed=seed))[:, 0]
    threshold = _threshold_for_share(held_out, escalate_share)
    escalated = held_out < threshold
    final = LogisticPredictor(l2=l2).fit(X, y[:, None])
    arrays = final.arrays()
    return CascadeCheck(
        model,
        mean=arrays["mean"],
        std=arrays["std"],
        weights=arrays["W"][:-1, 0],
        bias=float(arrays["W"][-1, 0]),
        threshold=threshold,
        training={
            "rows": len(rows),
            "folds": folds,
            "escalate_share": escalate_share,
            "heldout_escalated_share": round(float(escalated.mean()), 4),
            "heldout_accuracy_kept": _mean_or_none(y[~escalated]),
            "heldout_accuracy_escalated": _mean_or_none(y[escalated]),
            "accuracy": round(float(y.mean()), 4),
        },
    )


def _threshold_for_share(p: np.ndarray, share: float) -> float:
    """The threshold t whose escalated share mean(p < t) is closest to `share`. Answers with the same features
    tie, so a plain quantile can miss the share by the size of a tie group; 0 escalates nothing."""
    candidates = np.concatenate([[0.0], np.unique(p), [np.nextafter(1.0, 2.0)]])
    shares = np.searchsorted(np.sort(p), candidates, side="left") / len(p)
    return float(candidates[int(np.argmin(np.abs(shares - share)))])


def _mean_or_none(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None
