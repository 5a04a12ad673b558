"""Quality predictors: query features → P(good answer) per model. See `base.Predictor` for the interface."""

from tierwise.routing.predictors.base import Predictor, State
from tierwise.routing.predictors.registry import (
    PREDICTORS,
    make_predictor,
    predictor_class,
    predictor_from_state,
)

__all__ = ["PREDICTORS", "Predictor", "State", "make_predictor", "predictor_class", "predictor_from_state"]
