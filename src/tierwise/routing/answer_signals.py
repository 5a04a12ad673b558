"""Signals in a cheaper tier's *answer* that it may be wrong: what a cascade looks at before escalating.

A pre-generation router sees only the query. A cascade first asks the cheap tier, then reads its answer and
escalates when the answer looks unreliable (FrugalGPT, AutoMix). These are cheap, model-free checks of one
answer text, each a number roughly in [0, 1]:

- the arithmetic it shows is re-computed: ``<<12*3=36>>`` calculator annotations and ``a + b × c = d`` chains
  (an answer whose own arithmetic is wrong is wrong far more often: 34 % vs 68 % correct on RouteLLM's GSM8K);
- whether it ends in a final answer at all (``#### 42``, ``the answer is 42``, ``\\boxed{42}``), and whether that
  number is an integer, negative, huge, a number copied from the question, or differs from the last result it
  computed;
- its length and number of lines, and hedging words ("however", "assume", "approximately", "round");
- where the tier reports it, how sure the model itself was (`AnswerConfidence`: mean and min token logprob,
  mean entropy of the next-token distribution, from llama.cpp's logprobs): `confidence_features`.

Usage::

    x = answer_features("Tom has 3 apples…", "3 + 4 = <<3+4=7>>7 apples.\\n#### 7")   # (len(ANSWER_FEATURES),)
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ANSWER_FEATURES = (
    "has_final_answer",
    "final_not_integer",
    "final_negative",
    "final_huge",
    "final_copies_question",
    "final_differs_from_last_result",
    "arithmetic_error",
    "arithmetic_errors",
    "arithmetic_checked",
    "answer_chars",
    "answer_lines",
    "hedging",
)

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_FINAL = re.compile(
    r"####\s*\$?\s*(" + _NUMBER + r")|answer is:?\s*\$?\s*(" + _NUMBER + r")|\\boxed\{\s*(" + _NUMBER + r")",
    re.IGNORECASE,
)
_ANNOTATION = re.compile(r"<<([^=<>]{1,200})=([^<>]{1,40})>>")
# a chain of at least one operator between numbers, then "= result": "180 + 15 + 120 = 315", "9 * $2 = $18"
_EQUATION = re.compile(
    r"([\d$(][\d$.,\s()+\-*/×x%]{0,200}[-+*/×x][\d$.,\s()+\-*/×x%]{0,200}\d\)?)\s*=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)"
)
_HEDGE = re.compile(r"\bhowever\b|\bassum|\bapprox|\bround(?:ed|ing)?\b", re.IGNORECASE)
_OPS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_MAX_EXPONENT = 12  # 10**12 is plenty for word problems; bigger powers are refused, not computed


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _eval_node(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval_node(node.operand))
    raise ValueError("not plain arithmetic")


def evaluate_arithmetic(expr: str) -> float:
    """The value of a plain arithmetic expression as written in answers ("1,200 × 3", "$5 * 20%").

    Only numbers, + − × ÷ ^, parentheses and percentages; anything else raises ValueError (never `eval`).
    """
    cleaned = expr.replace(",", "").replace("$", "").replace("×", "*").replace("x", "*").replace("%", "/100")
    try:
        return _eval_node(ast.parse(cleaned.strip(), mode="eval").body)
    except (SyntaxError, ZeroDivisionError, OverflowError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc


def arithmetic_check(answer: str) -> tuple[int, int]:
    """(wrong, checked): how many of the calculations an answer shows are wrong, out of those re-computable."""
    wrong = checked = 0
    shown = _ANNOTATION.findall(answer) + _EQUATION.findall(_ANNOTATION.sub(" ", answer))
    for expr, result in shown:
        claimed = _number(result.strip().rstrip("."))
        try:
            value = evaluate_arithmetic(expr)
        except ValueError:
            continue
        if claimed is None or not math.isfinite(value):
            continue
        checked += 1
        # answers round: 1 % relative slack (and 0.01 absolute) counts "33.33" for 100/3 as right
        wrong += abs(value - claimed) > 0.01 * max(1.0, abs(value))
    return wrong, checked


def final_answer(answer: str) -> float | None:
    """The number an answer gives as its final answer (the last marker found), or None."""
    found = [next(g for g in m.groups() if g) for m in _FINAL.finditer(answer)]
    return _number(found[-1]) if found else None


def answer_features(question: str, answer: str) -> np.ndarray:
    """The `ANSWER_FEATURES` of one answer to `question`, as float32."""
    final = final_answer(answer)
    wrong, checked = arithmetic_check(answer)
    body = re.split(r"####|answer is", answer, maxsplit=1, flags=re.IGNORECASE)[0]
    shown = [x for x in (_number(s) for s in re.findall(_NUMBER, body)) if x is not None]
    in_question = {x for x in (_number(s) for s in re.findall(_NUMBER, question)) if x is not None}
    has = final is not None
    value = final if final is not None else 0.0
    return np.array(
        [
            has,
            has and value != int(value),
            has and value < 0,
            has and abs(value) > 1e5,
            has and value in in_question,
            has and bool(shown) and value != shown[-1],
            wrong > 0,
            math.log1p(wrong) / 2.0,
            math.log1p(checked) / 3.0,
            math.log1p(len(answer)) / 8.0,
            math.log1p(answer.count("\n")) / 3.0,
            bool(_HEDGE.search(answer)),
        ],
        dtype=np.float32,
    )


CONFIDENCE_FEATURES = ("has_confidence", "mean_token_p", "min_token_p", "mean_entropy")


@dataclass(frozen=True)
class AnswerConfidence:
    """How sure the serving model was of its own answer, from its token logprobs (natural log).

    `mean_entropy` is the mean entropy (nats) of the next-token distribution over the answer's tokens: exact
    when the tier computes it over the whole vocabulary (the llama.cpp device tier), else a lower bound from
    the top logprobs (None when none were given). Usage::

        AnswerConfidence.from_logprobs(chunk["choices"][0]["logprobs"]["content"])
    """

    mean_logprob: float
    min_logprob: float
    mean_entropy: float | None
    tokens: int

    @classmethod
    def from_logprobs(cls, content: Sequence[dict[str, Any]]) -> AnswerConfidence | None:
        """From OpenAI-format `logprobs.content` items (`token`, `logprob`, `top_logprobs`); None if empty."""
        values = [float(c["logprob"]) for c in content if c.get("logprob") is not None]
        if not values:
            return None
        entropies = [_top_entropy(c["top_logprobs"]) for c in content if c.get("top_logprobs")]
        return cls(
            mean_logprob=sum(values) / len(values),
            min_logprob=min(values),
            mean_entropy=sum(entropies) / len(entropies) if entropies else None,
            tokens=len(values),
        )

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean_logprob": self.mean_logprob, "min_logprob": self.min_logprob,
                "mean_entropy": self.mean_entropy, "tokens": self.tokens}


def _top_entropy(top: Sequence[dict[str, Any]]) -> float:
    """Entropy of the top-k alternatives, the rest of the mass counted as one outcome (a lower bound)."""
    p = [math.exp(float(t["logprob"])) for t in top]
    rest = max(0.0, 1.0 - sum(p))
    return -sum(x * math.log(x) for x in [*p, rest] if x > 0.0)


def confidence_features(confidence: AnswerConfidence | None) -> np.ndarray:
    """The `CONFIDENCE_FEATURES` of an answer, as float32; all zero when the tier reported no logprobs."""
    if confidence is None:
        return np.zeros(len(CONFIDENCE_FEATURES), dtype=np.float32)
    entropy = confidence.mean_entropy if confidence.mean_entropy is not None else 0.0
    return np.array(
        [1.0, math.exp(confidence.mean_logprob), math.exp(confidence.min_logprob), min(entropy / 5.0, 1.0)],
        dtype=np.float32,
    )
