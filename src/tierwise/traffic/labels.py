"""Labelling logged traffic with a judge: outcome rows (`query, model, score, …`) a router can train on.

A share of the logged requests that kept their text is sampled; the judge grades each served answer (a row for
the serving tier's model) and, for `answer_share` of them, answers the question itself and grades that answer
too (a row for the judge's model): RouteLLM's judge augmentation, which gives the router an outcome for the
strong tier where traffic alone only shows the tier that served. Tiers named in `ask` (usually the cheap ones)
answer every sampled question they were allowed to serve, and the judge grades those answers too: the sampled
rows then hold an outcome for every tier, not only for the one the router picked, so a router retrained on them
is not blind to the tiers it did not choose. Usage::

    picked = sample_records(read_records(conn), share=0.05, seed=0)
    print(estimate(picked, answer_share=0.2, judge=cloud.cost, ask={"edge": edge.cost}))
    rows = await label_records(picked, judge, answer_share=0.2, ask={"edge": edge_answerer}, seed=0)
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.costs import DEFAULT_OUTPUT_TOKENS, cost_usd, estimated_tokens
from tierwise.errors import TierRejected, TierUnavailable, UpstreamError
from tierwise.outcomes import OutcomeTable, generic_table, text_id
from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.traffic import store
from tierwise.traffic.judge import GRADE_OUTPUT_TOKENS, Answerer, Judge, grading_prompt
from tierwise.traffic.record import DecisionRecord

if TYPE_CHECKING:
    from tierwise.config import CostConfig

log = logging.getLogger("tierwise.traffic")


def sample_records(records: Sequence[DecisionRecord], *, share: float, seed: int = 0,
                   already_labelled: Collection[str] = (), labelled_queries: Collection[str] = (),
                   judge_on_device: bool = False) -> list[DecisionRecord]:
    """`share` of the requests that kept their text, ended ok and have no label yet, drawn at random (in log
    order) among distinct questions: a question already labelled (`labelled_queries`: `text_id`s) or asked twice is
    graded once, so repeated traffic is not paid for twice. A request the personal-data policy kept on the device
    is sampled only for a judge on the device (its text must not leave it)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"sample share must be in (0, 1], got {share}")
    usable = [r for r in records if r.prompt and r.answer and r.status == "ok" and r.request_id not in already_labelled
              and (judge_on_device or not r.device_only)]
    seen, distinct = set(labelled_queries), []
    for r in usable:
        query_id = text_id(r.prompt or "")
        if query_id not in seen:
            seen.add(query_id)
            distinct.append(r)
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(distinct)), min(round(len(usable) * share), len(distinct))))
    return [distinct[i] for i in picked]


@dataclass(frozen=True)
class LabelCost:
    """What labelling will cost: model calls, tokens, USD at each called tier's prices."""

    calls: int
    input_tokens: float
    output_tokens: float
    usd: float

    def __str__(self) -> str:
        return (f"{self.calls} model calls, ~{self.input_tokens:,.0f} input + ~{self.output_tokens:,.0f} output "
                f"tokens, ~{self.usd:.4f} USD")


def _answering(records: Sequence[DecisionRecord], answer_share: float, seed: int) -> set[str]:
    rng = random.Random(seed + 1)
    return {r.request_id for r in records if rng.random() < answer_share}


def asked_tiers(record: DecisionRecord, ask: Collection[str]) -> list[str]:
    """The tiers of `ask` that answer `record` again: not the one that served it, and only tiers it was allowed
    to go to (a tier the personal-data or capability policy excluded never sees it)."""
    return [name for name in ask if name != record.tier and (not record.allowed or name in record.allowed)]


def estimate(records: Sequence[DecisionRecord], *, answer_share: float, seed: int = 0, judge: CostConfig,
             ask: Mapping[str, CostConfig] | None = None) -> LabelCost:
    """The cost of `label_records` on `records` (token counts estimated from text length / 4; an answer is
    taken to be `DEFAULT_OUTPUT_TOKENS` long), at the judge's and each asked tier's prices."""
    answering = _answering(records, answer_share, seed)
    calls = inp = out = usd = 0.0

    def call(prices: CostConfig, input_tokens: float, output_tokens: float) -> None:
        nonlocal calls, inp, out, usd
        calls, inp, out = calls + 1, inp + input_tokens, out + output_tokens
        usd += cost_usd(prices, input_tokens, output_tokens)

    for r in records:
        question = r.prompt or ""
        call(judge, estimated_tokens(grading_prompt(question, r.answer or "")), GRADE_OUTPUT_TOKENS)
        answerers = [judge] if r.request_id in answering else []
        answerers += [(ask or {})[name] for name in asked_tiers(r, ask or {})]
        for prices in answerers:  # an answer, then the judge grading it
            call(prices, estimated_tokens(question), DEFAULT_OUTPUT_TOKENS)
            call(judge, estimated_tokens(grading_prompt(question, "")) + DEFAULT_OUTPUT_TOKENS, GRADE_OUTPUT_TOKENS)
    return LabelCost(int(calls), inp, out, usd)


async def label_records(records: Sequence[DecisionRecord], judge: Judge, *, answer_share: float = 0.0,
                        ask: Mapping[str, Answerer] | None = None, seed: int = 0,
                        concurrency: int = 4) -> list[dict[str, Any]]:
    """Outcome rows for `records` from `judge`, and from the tiers of `ask` answering again (`asked_tiers`);
    rows the judge gave no grade for are left out."""
    answering = _answering(records, answer_share, seed)
    gate = asyncio.Semaphore(concurrency)

    async def graded(r: DecisionRecord, model: str, answer: str, kind: str) -> dict[str, Any]:
        return _row(r, model, await judge.grade(r.prompt or "", answer, model=model), answer, judge, kind)

    async def one(r: DecisionRecord) -> list[dict[str, Any]]:
        query, rows = r.prompt or "", []
        async with gate:
            try:
                rows.append(await graded(r, r.model, r.answer or "", "served"))
                if r.request_id in answering:
                    rows.append(await graded(r, judge.model, await judge.answer(query), "judge_answer"))
                for name in asked_tiers(r, ask or {}):
                    answerer = (ask or {})[name]
                    rows.append(await graded(r, answerer.model, await answerer.answer(query), "asked"))
            except (TierUnavailable, TierRejected, UpstreamError) as err:  # costs this request's later rows only
                log.warning("labelling %s stopped after %d rows: %s", r.request_id, len(rows), err)
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
