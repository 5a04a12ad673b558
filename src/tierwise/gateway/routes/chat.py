"""`POST /v1/chat/completions`: validate, route, dispatch with failover, answer in the OpenAI format."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from tierwise.errors import TierwiseError
from tierwise.gateway.body import parse_body
from tierwise.gateway.disconnect import cancel_on_disconnect
from tierwise.gateway.dispatch import Served
from tierwise.gateway.escalation import plan_escalation
from tierwise.gateway.route_plan import RoutePlan, plan_route
from tierwise.gateway.state import GatewayState
from tierwise.protocol import ChatCompletionRequest, CompletionBuilder, error_body, new_completion_id
from tierwise.request_context import current_request_id
from tierwise.tiers.base import Chunk

log = logging.getLogger("tierwise.gateway")
router = APIRouter()
_CLOSE_TIMEOUT_S = 10.0
COST_HEADER = "x-tierwise-cost-usd"


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
    state: GatewayState = request.app.state.tierwise
    api_key = state.auth.key_of(request)
    chat = await parse_body(request, ChatCompletionRequest)
    await state.admit(chat, api_key)  # [state hook] rate limits (429 + Retry-After) and budget reservation
    plan = await plan_route(state, chat, api_key)
    # Until the first byte of the answer is sent, only a listener notices a client that left: without it an
    # abandoned request keeps its tier busy generating an answer nobody will read.
    if chat.stream:
        return await cancel_on_disconnect(request, _stream(state, chat, plan, api_key))
    return await cancel_on_disconnect(request, _complete(state, chat, plan, api_key))


def _report(plan: RoutePlan, served: Served) -> dict[str, Any]:
    tier = served.tier
    report = {**plan.info, "tier": tier.name, "location": tier.location, "model": tier.model_name,
              "request_id": current_request_id()}
    if served.failed:
        report["failover"] = served.failed
        report["reasons"] = [*plan.info.get("reasons", []), f"failed over to {tier.name!r}"]
    return report


def _headers(served: Served) -> dict[str, str]:
    headers = {"x-tierwise-tier": served.tier.name}
    if served.failed:
        headers["x-tierwise-failover"] = ",".join(f["tier"] for f in served.failed)
    return headers


async def collect_answer(
    state: GatewayState, chat: ChatCompletionRequest, order: list[str], plan: RoutePlan
) -> tuple[Served, CompletionBuilder]:
    """Non-streaming: nothing has reached the client yet, so even a mid-answer failure may move on."""
    failed: list[dict[str, str]] = []
    while True:
        served = await state.dispatcher.open(
            chat, order, skip_down=not plan.pinned, failed=failed, excluded=plan.info.get("excluded")
        )
        builder = CompletionBuilder()
        builder.add(served.first)
        try:
            async for chunk in served.rest:
                builder.add(chunk)
            return served, builder
        except TierwiseError as err:
            order = order[order.index(served.tier.name) + 1 :]
            if not order:
                raise
            failed = [*served.failed, {"tier": served.tier.name, "error": err.message, "code": err.code or "error"}]


async def _complete(
    state: GatewayState, chat: ChatCompletionRequest, plan: RoutePlan, api_key: str | None
) -> JSONResponse:
    served, builder = await collect_answer(state, chat, list(plan.order), plan)
    completion_id = new_completion_id()
    body = builder.build(completion_id=completion_id, model=served.tier.model_name)
    report = _report(plan, served)
    cost = charge(state, served, builder.usage, api_key) if builder.usage else None
    headers = _headers(served)
    escalation = plan_escalation(state, chat, plan, served.tier.name, body)
    if escalation is not None and escalation.target is not None:
        try:
            up, up_builder = await collect_answer(state, chat, [escalation.target], plan)
        except TierwiseError as err:  # the first answer is still an answer: keep it, say what happened
            escalation.error = f"escalation to {escalation.target!r} failed: {err.message}"
        else:
            body = up_builder.build(completion_id=completion_id, model=up.tier.model_name)
            report = {**_report(plan, up), "reasons": [*plan.info.get("reasons", []), escalation.reason]}
            up_cost = charge(state, up, up_builder.usage, api_key) if up_builder.usage else None
            cost = None if cost is None and up_cost is None else (cost or 0.0) + (up_cost or 0.0)
            headers = {**_headers(up), "x-tierwise-escalated-from": escalation.checked}
    if escalation is not None:
        report["cascade"] = escalation.report()
        state.metrics.cascade_checks.labels(escalation.checked, escalation.result).inc()
    if cost is not None:
        report["cost_usd"] = cost  # both calls, when the request was escalated
        headers[COST_HEADER] = f"{cost:.8g}"
    body["tierwise"] = report
    return JSONResponse(body, headers=headers)


def charge(state: GatewayState, served: Served, usage: dict[str, Any], api_key: str | None) -> float:
    """What the request cost on the tier that served it, added to the key's spending today."""
    cost = served.tier.cost_usd(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    state.ledger.charge(api_key, cost)
    state.settle_usage(usage)  # [state hook] token estimate corrected by real usage; reservation released
    return cost


async def _stream(
    state: GatewayState, chat: ChatCompletionRequest, plan: RoutePlan, api_key: str | None
) -> StreamingResponse:
    # Wait for the first chunk before answering, so failover stays invisible and errors keep their status.
    served = await state.dispatcher.open(
        chat, plan.order, skip_down=not plan.pinned, excluded=plan.info.get("excluded")
    )
    return ServedStream(
        served,
        _events(state, chat, served, _report(plan, served), api_key),
        write_timeout_s=state.settings.gateway.client_write_timeout_s,
        media_type="text/event-stream",
        headers={**_headers(served), "Cache-Control": "no-cache"},
    )


class ServedStream(StreamingResponse):
    """A streamed answer that frees its tier however the response ends, even if its body was never started
    (a client gone before the first byte: the event generator then never runs its own cleanup).

    A client that stops reading makes writes wait for ever once the socket buffers are full, and its request
    would hold the tier's slot; a write that waits longer than `write_timeout_s` ends the response instead."""

    def __init__(
        self, served: Served, content: AsyncIterator[bytes], *, write_timeout_s: float, **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self.served = served
        self.write_timeout_s = write_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def bounded_send(message: Message) -> None:
            async with asyncio.timeout(self.write_timeout_s):  # 4× cheaper per chunk than anyio.fail_after
                await send(message)

        try:
            await super().__call__(scope, receive, bounded_send)
        except TimeoutError:
            log.warning("client of tier %s stopped reading for %g s: stream ended", self.served.tier.name,
                        self.write_timeout_s)
        finally:
            with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
                await self.served.aclose()


async def _events(
    state: GatewayState, chat: ChatCompletionRequest, served: Served, report: dict[str, Any], api_key: str | None
) -> AsyncIterator[bytes]:
    same = {"id": new_completion_id(), "model": served.tier.model_name}  # every chunk names the same answer
    charged = False
    try:
        yield _sse({**served.first, **same, "tierwise": report})
        # The cost is known only when the tier is done: the chunk that finishes the answer is held back (it carries
        # no text of its own as a rule) and goes out last, with the cost — or the usage chunk, when asked for.
        finishing: Chunk | None = None
        usage_chunk: Chunk | None = None
        async for chunk in served.rest:
            if not chunk.get("choices"):  # the usage chunk, a tier's last
                usage_chunk = chunk
                continue
            if finishing is not None:
                yield _sse(finishing)
                finishing = None
            if any(c.get("finish_reason") for c in chunk["choices"]):
                finishing = {**chunk, **same}
                continue
            yield _sse({**chunk, **same})
        summary: dict[str, Any] = {"request_id": report.get("request_id")}
        if served.usage:
            charged = True
            summary["cost_usd"] = charge(state, served, served.usage, api_key)
        if usage_chunk is not None and chat.wants_usage_chunk:
            if finishing is not None:
                yield _sse(finishing)
            yield _sse({**usage_chunk, **same, "tierwise": summary})
        elif finishing is not None:
            yield _sse({**finishing, "tierwise": summary})
    except TierwiseError as err:
        yield _sse(error_body(err.message, error_type=err.error_type, code=err.code))
    except Exception:
        log.exception("stream from tier %s failed", served.tier.name)
        yield _sse(error_body("internal error in tierwise while streaming", error_type="server_error"))
    finally:
        # A client that went away cancels this generator; the tier's stream must still be closed (its slot and
        # model freed), so the close is shielded from that cancellation, and bounded.
        with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
            await served.aclose()
        if served.usage and not charged:  # a broken or abandoned stream is charged for what it used
            charge(state, served, served.usage, api_key)
    yield b"data: [DONE]\n\n"


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
