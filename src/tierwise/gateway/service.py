"""`ChatService`: owns a chat request from its parsed body to its answer (as vLLM's `OpenAIServingChat` does).

    plan        model="auto": the policies decide which tiers are allowed (fail-closed), the router orders them;
                model="<tier>": the client pinned a tier — health, latency and load do not overrule that choice,
                but the policies that bind pinned requests (personal data, budget, capability) still do
    complete    non-streaming: dispatch with failover (even mid-answer: nothing has reached the client), the
                cascade's check and escalation, charging
    collect     the same without the cascade, folding the chunks with any `AnswerFold` (legacy text completions)
    stream      streaming: dispatch with failover until the first chunk, then a `ChatStream` committed to that
                tier, which charges when it ends

Everything decided travels in one `RequestTrace`; the route handlers only parse the body and write the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tierwise.errors import ModelNotFound, TierwiseError
from tierwise.gateway.cascade import plan_escalation
from tierwise.gateway.decision import Attempt, RequestTrace, RoutePlan
from tierwise.gateway.dispatch import Served
from tierwise.gateway.state import GatewayState
from tierwise.gateway.streaming import ChatStream
from tierwise.protocol import ChatCompletionRequest, CompletionBuilder, new_completion_id
from tierwise.request_context import current_request_id
from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.routing.pii import pii_kinds_found
from tierwise.routing.policy import apply_policies
from tierwise.routing.router import RouteRequest
from tierwise.routing.settings import PolicySettings
from tierwise.tiers.base import Chunk

# Above this many characters the personal-data scan (≈ 0.3–1 µs a character) runs in a thread: the event loop
# then keeps serving other streams between the scan's GIL slices instead of stalling for the whole scan.
SCAN_IN_THREAD_CHARS = 32 * 1024


class AnswerFold(Protocol):
    """Folds a tier's chunks into one answer (`CompletionBuilder` for chat); `usage` is the tier's count."""

    usage: dict[str, Any] | None

    def add(self, chunk: Chunk) -> None: ...


Fold = TypeVar("Fold", bound=AnswerFold)


async def scan_large_text(text: str, policies: PolicySettings) -> frozenset[str] | None:
    """The kinds of personal data in a text too large to scan on the event loop (scanned in a thread), or None
    for the personal-data policy to scan itself."""
    if policies.personal_data == "off" or len(text) <= SCAN_IN_THREAD_CHARS:
        return None
    return frozenset(await asyncio.to_thread(pii_kinds_found, text, kinds=policies.pii_kinds))


@dataclass
class Completion:
    """A finished non-streaming answer: the chat.completion body (without the report) and its trace."""

    body: dict[str, Any]
    trace: RequestTrace

    def response_body(self) -> dict[str, Any]:
        return {**self.body, "tierwise": self.trace.report()}


class ChatService:
    """The chat pipeline over the gateway's state (tiers, health, router, ledger, metrics)."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state

    async def plan(self, chat: ChatCompletionRequest, api_key: str | None) -> RoutePlan:
        state = self.state
        if chat.model != "auto" and chat.model not in state.tiers:
            known = ", ".join(["auto", *state.tiers])
            raise ModelNotFound(f"model {chat.model!r} does not exist; choose one of: {known}", param="model")
        await state.admit(chat, api_key)  # rate limits (429 + Retry-After), and the budget this request reserves
        conversation = chat.outbound_text
        policies = state.settings.policies
        request = RouteRequest(
            prompt=chat.last_user_text(),
            conversation=conversation,
            api_key=api_key,
            max_tokens=chat.token_limit,
            unsupported={name: tier.capabilities.missing_for(chat) for name, tier in state.tiers.items()},
            pii_kinds=await scan_large_text(conversation, policies),
        )
        outcome = apply_policies(
            request,
            state.tier_views(),
            policies,
            spent_today_usd=state.ledger.spent(api_key),
            ttft_estimates_ms=state.ttft_estimates_ms(),
        )
        if chat.model != "auto":
            refusal = outcome.pinned_refusal(chat.model)
            if refusal is not None:
                raise refusal
            return RoutePlan([chat.model], outcome, choice=None)
        if not outcome.allowed:
            raise outcome.refusal()
        router, version = state.current_router()
        choice = router.decide(request, outcome.allowed)
        return RoutePlan(choice.order, outcome, choice, router_version=version)

    async def collect(
        self, chat: ChatCompletionRequest, api_key: str | None, fold: Callable[[], Fold]
    ) -> tuple[Fold, RequestTrace]:
        """Non-streaming, without the cascade: the whole answer folded by `fold()`, charged, and its trace."""
        trace = RequestTrace(current_request_id(), await self.plan(chat, api_key))
        served, answer = await self._collect(chat, trace.plan.order, trace, fold)
        trace.tier, trace.ttft_s, trace.usage = served.tier, served.ttft_s, answer.usage
        self._charge(trace, served.tier.name, answer.usage, api_key)
        if not isinstance(answer, CompletionBuilder):  # a chat answer is logged once the cascade has checked it
            self._log(trace, chat, api_key, answer_text=None, confidence=None)
        return answer, trace

    async def complete(self, chat: ChatCompletionRequest, api_key: str | None) -> Completion:
        builder, trace = await self.collect(chat, api_key, CompletionBuilder)
        assert trace.tier is not None
        served_tier = trace.tier
        confidence = served_tier.confidence(str(builder.top.get("id", "")))  # before the id is replaced
        completion_id = new_completion_id()
        body = builder.build(completion_id=completion_id, model=served_tier.model_name)
        escalation = plan_escalation(self.state, chat, trace.plan, served_tier.name, body, confidence=confidence)
        trace.escalation = escalation
        if escalation is not None and escalation.target is not None:
            try:
                up, up_builder = await self._collect(chat, [escalation.target], trace, CompletionBuilder)
            except TierwiseError as err:  # the first answer is still an answer: keep it, say what happened
                escalation.error = f"escalation to {escalation.target!r} failed: {err.message}"
            else:
                body = up_builder.build(completion_id=completion_id, model=up.tier.model_name)
                trace.escalated_from, trace.tier, trace.usage = served_tier.name, up.tier, up_builder.usage
                self._charge(trace, up.tier.name, up_builder.usage, api_key)
                confidence = up.tier.confidence(str(up_builder.top.get("id", "")))
        if escalation is not None:
            self.state.metrics.cascade_checks.labels(escalation.checked, escalation.result).inc()
        self._log(trace, chat, api_key, answer_text=_answer_text(body), confidence=confidence)
        return Completion(body, trace)

    async def stream(self, chat: ChatCompletionRequest, api_key: str | None) -> ChatStream:
        """Waits for the first chunk before returning, so failover stays invisible and errors keep their status."""
        trace = RequestTrace(current_request_id(), await self.plan(chat, api_key))
        served = await self.state.dispatcher.open(
            chat, trace.plan.order, trace.attempts, skip_down=not trace.plan.pinned, excluded=trace.plan.excluded
        )
        trace.tier, trace.ttft_s = served.tier, served.ttft_s
        answer_id = str(served.first.get("id", ""))  # the tier's own id, before the stream gives it the gateway's

        def finish(status: str, answer_text: str | None) -> None:
            trace.usage = served.usage
            self._log(trace, chat, api_key, answer_text=answer_text, confidence=served.tier.confidence(answer_id),
                      status=status)

        log = self.state.decision_log
        return ChatStream(served, trace, wants_usage_chunk=chat.wants_usage_chunk,
                          charge=lambda usage: self._charge(trace, served.tier.name, usage, api_key),
                          finish=finish, keep_text=log is not None and log.settings.keep_text)

    async def _collect(
        self, chat: ChatCompletionRequest, order: list[str], trace: RequestTrace, fold: Callable[[], Fold]
    ) -> tuple[Served, Fold]:
        """Non-streaming: nothing has reached the client yet, so even a mid-answer failure may move on."""
        plan = trace.plan
        while True:
            served = await self.state.dispatcher.open(
                chat, order, trace.attempts, skip_down=not plan.pinned, excluded=plan.excluded
            )
            answer = fold()
            answer.add(served.first)
            try:
                async for chunk in served.rest:
                    answer.add(chunk)
                return served, answer
            except TierwiseError as err:
                order = order[order.index(served.tier.name) + 1 :]
                if not order:
                    raise
                trace.attempts.append(Attempt(served.tier.name, err))
            finally:
                await served.aclose()

    def _log(
        self, trace: RequestTrace, chat: ChatCompletionRequest, api_key: str | None, *, answer_text: str | None,
        confidence: AnswerConfidence | None, status: str = "ok",
    ) -> None:
        """One row in the decision log (router.log), when there is one: queued, never awaited."""
        log = self.state.decision_log
        if log is None:
            return
        log.append(trace.decision_record(key_hash=log.hash_key(api_key), status=status, confidence=confidence,
                                         prompt=chat.last_user_text(), answer=answer_text))

    def _charge(self, trace: RequestTrace, tier: str, usage: dict[str, Any] | None, api_key: str | None) -> None:
        """What the answer cost on `tier`, added to the trace and to the key's spending today."""
        if not usage:
            return
        cost = self.state.tiers[tier].cost_usd(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )
        self.state.ledger.charge(api_key, cost)
        self.state.settle_usage(usage)  # the rate limit's token estimate corrected, the reservation released
        trace.add_cost(cost)


def _answer_text(body: dict[str, Any]) -> str | None:
    choices = body.get("choices") or []
    content = (choices[0].get("message") or {}).get("content") if choices else None
    return content if isinstance(content, str) else None
