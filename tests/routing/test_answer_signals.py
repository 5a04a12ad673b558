"""Signals in a cheaper tier's answer: arithmetic re-checked, final answer found, features in order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tierwise.routing.answer_signals import (
    ANSWER_FEATURES,
    CONFIDENCE_FEATURES,
    AnswerConfidence,
    answer_features,
    arithmetic_check,
    confidence_features,
    evaluate_arithmetic,
    final_answer,
)

QUESTION = "Janet has 16 eggs. She eats 3 and bakes with 4. She sells the rest at $2 each. How much does she make?"
RIGHT = "She has 16 - 3 - 4 = <<16-3-4=9>>9 eggs left.\nShe makes 9 * $2 = $<<9*2=18>>18.\n#### 18"
WRONG = "She has 16 - 3 - 4 = <<16-3-4=9>>9 eggs left.\nShe makes 9 * $2 = $<<9*2=16>>16.\n#### 16"


def _f(question: str, answer: str) -> dict[str, float]:
    return dict(zip(ANSWER_FEATURES, answer_features(question, answer).tolist(), strict=True))


@pytest.mark.parametrize(
    ("expr", "value"),
    [("1,200 × 3", 3600.0), ("$5 * 20%", 1.0), ("(3 + 4) / 2", 3.5), ("2 ** 10", 1024.0), ("-3 + 1", -2.0)],
)
def test_evaluates_plain_arithmetic(expr: str, value: float) -> None:
    assert evaluate_arithmetic(expr) == pytest.approx(value)


@pytest.mark.parametrize("expr", ["__import__('os')", "2 ** 999999", "1 / 0", "abs(-1)", "3 +"])
def test_refuses_anything_but_arithmetic(expr: str) -> None:
    with pytest.raises(ValueError):
        evaluate_arithmetic(expr)


def test_finds_wrong_arithmetic_in_annotations_and_chains() -> None:
    assert arithmetic_check(RIGHT) == (0, 4)  # two annotations, two "a op b = c" chains
    assert arithmetic_check(WRONG) == (2, 4)  # 9 * 2 = 16, in the annotation and in the chain
    assert arithmetic_check("Total: 180 + 15 + 120 = 315 miles, so 315 / 3 = 105.") == (0, 2)
    assert arithmetic_check("Each gets 100 / 3 = 33.33 apples") == (0, 1)  # rounding is not an error
    assert arithmetic_check("no numbers here") == (0, 0)


def test_final_answer_markers() -> None:
    assert final_answer(RIGHT) == 18.0
    assert final_answer("so the answer is $1,250.") == 1250.0
    assert final_answer(r"hence \boxed{-7}") == -7.0
    assert final_answer("it is 12 = <<3*4=12>>12") is None  # cut off before any final answer


def test_features_of_a_right_and_a_wrong_answer() -> None:
    right, wrong = _f(QUESTION, RIGHT), _f(QUESTION, WRONG)
    assert right["has_final_answer"] == wrong["has_final_answer"] == 1.0
    assert right["arithmetic_error"] == 0.0 and wrong["arithmetic_error"] == 1.0
    assert wrong["final_copies_question"] == 1.0 and right["final_copies_question"] == 0.0  # 16 is in the question
    truncated = _f(QUESTION, "She has 16 - 3 - 4 = <<16-3-4=9>>9 eggs and sells 9 * 2 = <<9*2")
    assert truncated["has_final_answer"] == 0.0
    odd = _f(QUESTION, "16 - 3 = 13\nHowever, 13 / 2 = 6.5\n#### 6.5")
    assert odd["final_not_integer"] == 1.0 and odd["hedging"] == 1.0
    assert _f(QUESTION, "9 * 2 = 18\n#### 20")["final_differs_from_last_result"] == 1.0
    x = answer_features(QUESTION, RIGHT)
    assert x.dtype == np.float32 and x.shape == (len(ANSWER_FEATURES),) and np.all((x >= 0) & (x <= 1))


def test_confidence_from_openai_logprobs() -> None:
    content = [
        {"token": "4", "logprob": -0.1,
         "top_logprobs": [{"token": "4", "logprob": -0.1}, {"token": "5", "logprob": -2.5}]},
        {"token": ".", "logprob": -1.5, "top_logprobs": [{"token": ".", "logprob": -1.5}]},
    ]
    conf = AnswerConfidence.from_logprobs(content)
    assert conf is not None
    assert conf.mean_logprob == pytest.approx(-0.8) and conf.min_logprob == -1.5 and conf.tokens == 2
    p1, p2 = math.exp(-0.1), math.exp(-2.5)
    first = -(p1 * math.log(p1) + p2 * math.log(p2) + (1 - p1 - p2) * math.log(1 - p1 - p2))
    q = math.exp(-1.5)
    second = -(q * math.log(q) + (1 - q) * math.log(1 - q))
    assert conf.mean_entropy == pytest.approx((first + second) / 2)
    assert AnswerConfidence.from_logprobs([]) is None
    assert AnswerConfidence.from_logprobs([{"token": "a", "logprob": -0.2}]).mean_entropy is None  # type: ignore[union-attr]


def test_confidence_features_are_zero_without_logprobs_and_order_sure_above_unsure() -> None:
    assert confidence_features(None).tolist() == [0.0] * len(CONFIDENCE_FEATURES)
    sure = confidence_features(AnswerConfidence(-0.05, -0.5, 0.2, 10))
    unsure = confidence_features(AnswerConfidence(-1.5, -6.0, 3.0, 10))
    assert sure[0] == unsure[0] == 1.0
    assert sure[1] > unsure[1] and sure[2] > unsure[2] and sure[3] < unsure[3]
    assert all(0.0 <= x <= 1.0 for x in [*sure, *unsure])
