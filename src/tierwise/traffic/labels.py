"""Labelling logged traffic with a judge: outcome rows (`query, model, score, …`) a router can train on.

A share of the logged requests that kept their text is sampled; the judge grades each served answer (a row for
the serving tier's model) and, for `answer_share` of them, answers the question itself and grades that answer
too (a row for the judge's model): RouteLLM's judge augmentation, which gives the router an outcome for the
strong tier where traffic alone only shows the tier that served. Usage::

    picked = sample_records(read_records(conn), share=0.05, seed=0)
    print(estimate(picked, answer_share=0.2, input_per_mtok=0.55, output_per_mtok=2.19))
    rows = await label_records(picked, judge, answer_share=0.2, seed=0)
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tierwise.outcomes import CHARS_PER_TOKEN, OutcomeTable, generic_table, text_id
from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.traffic import store
from tierwise.traffic.judge import Judge, grading_prompt
from tierwise.traffic.record import DecisionRecord

GRADE_OUTPUT_TOKENS = 8  # "Grade: N"
ANSWER_OUTPUT_TOKENS = 256  # the judge's own answer: the project's default output length


def sample_records(records: Sequence[DecisionRecord], *, share: float, seed: int = 0,
                   already_labelled: set[str] | None = None) -> list[DecisionRecord]:
    """A random `share` of the records that kept their text, ok status, and no label yet (in log order)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"sample share must be in (0, 1], got {share}")
    done = already_labelled or set()
    usable = [r for r in records if r.prompt and r.answer and r.status == "ok" and r.request_id not in done]
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(usable)), round(len(usable) * share)))
    return [usable[i] for i in picked]


@dataclass(frozen=True)
class LabelCost:
    """What labelling will cost: judge calls, tokens, USD at the judge tier's prices."""

    calls: int
    input_tokens: float
    output_tokens: float
    usd: float

    def __str__(self) -> str:
        return (f"{self.calls} judge calls, ~{self.input_tokens:,.0f} input + ~{self.output_tokens:,.0f} output "
                f"tokens, ~{self.usd:.4f} USD")


def _answering(records: Sequence[DecisionRecord], answer_share: float, seed: int) -> set[str]:
    rng = random.Random(seed + 1)
    return {r.request_id for r in records if rng.random() < answer_share}


def estimate(records: Sequence[DecisionRecord], *, answer_share: float, seed: int = 0,
             input_per_mtok: float, output_per_mtok: float) -> LabelCost:
    """The cost of `label_records` on `records` (token counts estimated from text length / 4)."""
    answering = _answering(records, answer_share, seed)
    calls = inp = out = 0.0
    for r in records:
        grade_in = len(grading_prompt(r.prompt or "", r.answer or "")) / CHARS_PER_TOKEN
        calls, inp, out = calls + 1, inp + grade_in, out + GRADE_OUTPUT_TOKENS
        if r.request_id in answering:  # answer, then grade that answer
            calls += 2
            inp += len(r.prompt or "") / CHARS_PER_TOKEN + grade_in
            out += ANSWER_OUTPUT_TOKENS + GRADE_OUTPUT_TOKENS
    return LabelCost(int(calls), inp, out, (inp * input_per_mtok + out * output_per_mtok) / 1e6)


async def label_records(records: Sequence[DecisionRecord], judge: Judge, *, answer_share: float = 0.0,
                        seed: int = 0, concurrency: int = 4) -> list[dict[str, Any]]:
    """Outcome rows for `records` from `judge` (a `Judge`); rows the judge gave no grade for are left out."""
    answering = _answering(records, answer_share, seed)
    gate = asyncio.Semaphore(concurrency)

    async def one(r: DecisionRecord) -> list[dict[str, Any]]:
        query, answer = r.prompt or "", r.answer or ""
        async with gate:
            rows = [_row(r, r.model, await judge.grade(query, answer, model=r.model), answer, judge, "served")]
            if r.request_id in answering:
                own = await judge.answer(query)
                rows.append(_row(r, judge.model, await judge.grade(query, own, model=judge.model), own, judge,
                                 "judge_answer"))
        return [row for row in rows if row["score"] is not None]

    return [row for rows in await asyncio.gather(*(one(r) for r in records)) for row in rows]


def _row(r: DecisionRecord, model: str, score: float | None, response: str, judge: Judge, kind: str) -> dict[str, Any]:
    query = r.prompt or ""
    return {"query": query, "model": model, "score": score, "query_id": text_id(query), "response": response,
            "request_id": r.request_id, "time": time.time(), "judge": judge.model, "kind": kind}


def labels_table(rows: Sequence[dict[str, Any]]) -> OutcomeTable:
    """The label rows as an `OutcomeTable` (the generic format's rules: one row per query, later labels win)."""
    return generic_table(rows)


def cascade_table(conn: sqlite3.Connection, model: str) -> tuple[OutcomeTable, list[AnswerConfidence | None]]:
    """`model`'s served answers that a judge graded, one row per request, with the model's own confidence in
    each (where its tier reported one): what `train_cascade(..., confidences=)` learns from."""
    served = [r for r in store.read_labels(conn) if r["kind"] == "served" and r["model"] == model]
    confidence = {r.request_id: r.confidence for r in store.read_records(conn)}
    table = OutcomeTable(
        queries=[str(r["query"]) for r in served],
        models=[model],
        scores=np.array([[float(r["score"])] for r in served]).reshape(len(served), 1),
        query_ids=[str(r["request_id"]) for r in served],
        responses={model: [str(r["response"] or "") for r in served]},
    )
    return table, [confidence.get(str(r["request_id"])) for r in served]
