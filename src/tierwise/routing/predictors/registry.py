"""Predictor name → class, so router files and the CLI pick a predictor by name."""

from __future__ import annotations

from typing import Any

import numpy as np

from tierwise.routing.predictors.base import Predictor
from tierwise.routing.predictors.domain_knn import DomainKnnPredictor
from tierwise.routing.predictors.knn import KnnPredictor
from tierwise.routing.predictors.linear import LogisticPredictor
from tierwise.routing.predictors.mf import MatrixFactorizationPredictor
from tierwise.routing.predictors.mlp import MlpPredictor

PREDICTORS: dict[str, type[Predictor]] = {
    cls.name: cls
    for cls in (KnnPredictor, LogisticPredictor, MlpPredictor, MatrixFactorizationPredictor, DomainKnnPredictor)
}


def predictor_class(name: str) -> type[Predictor]:
    """The predictor class registered under `name`; the error lists the valid names."""
    try:
        return PREDICTORS[name]
    except KeyError:
        raise KeyError(f"unknown predictor {name!r}; valid: {', '.join(sorted(PREDICTORS))}") from None


def make_predictor(name: str, **hyper_parameters: Any) -> Predictor:
    """A new, unfitted predictor of this kind."""
    return predictor_class(name)(**hyper_parameters)


def predictor_from_state(params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Predictor:
    """Rebuild a fitted predictor from `Predictor.to_state()`'s output (its `name` picks the class)."""
    return predictor_class(params["name"]).from_state(params, arrays)
