"""Evaluation: cost–quality curves, APGR/CPT (RouteLLM's protocol) and AIQ, on held-out folds of outcome data."""

from tierwise.evaluation.metrics import Curve, aiq, apgr, cpt, pgr, routellm_curve
from tierwise.evaluation.runner import prepare_table, run_evaluation

__all__ = ["Curve", "aiq", "apgr", "cpt", "pgr", "prepare_table", "routellm_curve", "run_evaluation"]
