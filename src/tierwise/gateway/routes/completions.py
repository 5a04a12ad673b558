"""`POST /v1/completions`: legacy text completions of one text prompt, routed like chat.

The prompt is routed, policed (personal data, capabilities, budget, health), failed over and charged as the chat
request `TextCompletionRequest.as_chat()` makes of it; the tier that serves it answers with its text-completion
method (`Tier.complete_text`: llama.cpp's `create_completion` on the device, `/v1/completions` upstream), which
the dispatcher calls for a request that stands for a text completion (`Tier.answer`). Tiers without the
`text_completion` capability are skipped by `auto` and refused (400) when pinned. `echo` is done here, for every
tier. Streams are `text_completion` chunks; the last one carries the `tierwise` summary (cost, request id).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from tierwise.errors import InvalidRequest, TierwiseError
from tierwise.gateway.body import parse_body
from tierwise.gateway.disconnect import cancel_on_disconnect
from tierwise.gateway.dispatch import Served
from tierwise.gateway.errors import invalid_request_from
from tierwise.gateway.route_plan import RoutePlan, plan_route
from tierwise.gateway.routes.chat import COST_HEADER, ServedStream, charge
from tierwise.gateway.state import GatewayState
from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest, error_body, new_text_completion_id
from tierwise.request_context import current_request_id
from tierwise.tiers.base import Chunk

log = logging.getLogger("tierwise.gateway")
router = APIRouter()
_CLOSE_TIMEOUT_S = 10.0
_LOGPROB_LISTS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


class TextAnswer:
    """Folds `text_completion` chunks into choices: texts and logprobs lists joined, the last finish_reason."""

    def __init__(self) -> None:
        self.slots: dict[int, dict[str, Any]] = {}
        self.texts: dict[int, list[str]] = {}  # joined once in choices(): concatenating as chunks come is quadratic
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: Chunk) -> None:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            slot = self.slots.setdefault(index, {"index": index, "text": "", "logprobs": None, "finish_reason": None})
            self.texts.setdefault(index, []).append(choice.get("text") or "")
            if logprobs := choice.get("logprobs"):
                merged = slot["logprobs"] or {key: [] for key in _LOGPROB_LISTS}
                for key in _LOGPROB_LISTS:
                    merged[key].extend(logprobs.get(key) or [])
                slot["logprobs"] = merged
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]

    def choices(self, *, prefix: str = "") -> list[dict[str, Any]]:
        """Every choice by index, each text after `prefix` (the prompt, for `echo`)."""
        if not self.slots:
            return [{"index": 0, "text": prefix, "logprobs": None, "finish_reason": "stop"}]
        return [{**self.slots[i], "text": prefix + "".join(self.texts[i])} for i in sorted(self.slots)]


@router.post("/v1/completions", response_model=None)
async def completions(request: Request) -> JSONResponse | StreamingResponse:
    state: GatewayState = request.app.state.tierwise
    api_key = state.auth.key_of(request)
    body = await parse_body(request, TextCompletionRequest)
    if (refused := body.refusal()) is not None:
        raise InvalidRequest(refused[1], param=refused[0])
    try:
        chat = body.as_chat()
    except ValidationError as err:
        raise invalid_request_from(err) from None
    plan = await plan_route(state, chat, api_key)
    if body.stream:
        return await cancel_on_disconnect(request, _stream(state, body, chat, plan, api_key))
    return await cancel_on_disconnect(request, _complete(state, body, chat, plan, api_key))


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


async def _collect(state: GatewayState, chat: ChatCompletionRequest, plan: RoutePlan) -> tuple[Served, TextAnswer]:
    """The whole answer; nothing has reached the client yet, so even a mid-answer failure may move on."""
    order = list(plan.order)
    failed: list[dict[str, str]] = []
    while True:
        served = await state.dispatcher.open(
            chat, order, skip_down=not plan.pinned, failed=failed, excluded=plan.info.get("excluded")
        )
        answer = TextAnswer()
        answer.add(served.first)
        try:
            async for chunk in served.rest:
                answer.add(chunk)
            return served, answer
        except TierwiseError as err:
            order = order[order.index(served.tier.name) + 1 :]
            if not order:
                raise
            failed = [*served.failed, {"tier": served.tier.name, "error": err.message, "code": err.code or "error"}]


async def _complete(state: GatewayState, body: TextCompletionRequest, chat: ChatCompletionRequest, plan: RoutePlan,
                    api_key: str | None) -> JSONResponse:
    served, answer = await _collect(state, chat, plan)
    headers = _headers(served)
    report = _report(plan, served)
    reply: dict[str, Any] = {
        "id": new_text_completion_id(), "object": "text_completion", "created": int(time.time()),
        "model": served.tier.model_name, "choices": answer.choices(prefix=body.text if body.echo else ""),
    }
    if answer.usage is not None:
        reply["usage"] = answer.usage
        report["cost_usd"] = charge(state, served, answer.usage, api_key)
        headers[COST_HEADER] = f"{report['cost_usd']:.8g}"
    reply["tierwise"] = report
    return JSONResponse(reply, headers=headers)


async def _stream(state: GatewayState, body: TextCompletionRequest, chat: ChatCompletionRequest, plan: RoutePlan,
                  api_key: str | None) -> StreamingResponse:
    # The first chunk is waited for before answering, so that failover stays invisible and errors keep their status.
    served = await state.dispatcher.open(chat, plan.order, skip_down=not plan.pinned,
                                         excluded=plan.info.get("excluded"))
    return ServedStream(served, _events(state, body, served, _report(plan, served), api_key),
                        write_timeout_s=state.settings.gateway.client_write_timeout_s, media_type="text/event-stream",
                        headers={**_headers(served), "Cache-Control": "no-cache"})


class _ClientChunks:
    """The tier's chunks as the client sees them: one id and model, OpenAI's choice fields, the prompt echoed."""

    def __init__(self, body: TextCompletionRequest, model: str) -> None:
        self.same = {"id": new_text_completion_id(), "object": "text_completion", "model": model}
        self.echo = body.text if body.echo else None
        self.echoed: set[int] = set()

    def __call__(self, chunk: Chunk) -> Chunk:
        choices = []
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            text = choice.get("text") or ""
            if self.echo is not None and index not in self.echoed:
                self.echoed.add(index)
                text = self.echo + text
            choices.append({"index": index, "text": text, "logprobs": choice.get("logprobs"),
                            "finish_reason": choice.get("finish_reason")})
        return {"created": int(time.time()), **chunk, **self.same, "choices": choices}


async def _events(state: GatewayState, body: TextCompletionRequest, served: Served, report: dict[str, Any],
                  api_key: str | None) -> AsyncIterator[bytes]:
    client_chunk = _ClientChunks(body, served.tier.model_name)
    charged = False
    try:
        yield _sse({**client_chunk(served.first), "tierwise": report})
        # The cost is known only once the tier is done: the chunk that finishes the answer goes out last, with it.
        finishing: Chunk | None = None
        usage_chunk: Chunk | None = None
        async for chunk in served.rest:
            if not chunk.get("choices"):
                usage_chunk = chunk
                continue
            if finishing is not None:
                yield _sse(finishing)
                finishing = None
            if any(c.get("finish_reason") for c in chunk["choices"]):
                finishing = client_chunk(chunk)
                continue
            yield _sse(client_chunk(chunk))
        summary: dict[str, Any] = {"request_id": report.get("request_id")}
        if served.usage:
            charged = True
            summary["cost_usd"] = charge(state, served, served.usage, api_key)
        if usage_chunk is not None and body.wants_usage_chunk:
            if finishing is not None:
                yield _sse(finishing)
            yield _sse({**client_chunk(usage_chunk), "tierwise": summary})
        elif finishing is not None:
            yield _sse({**finishing, "tierwise": summary})
    except TierwiseError as err:
        yield _sse(error_body(err.message, error_type=err.error_type, code=err.code))
    except Exception:
        log.exception("text completion stream from tier %s failed", served.tier.name)
        yield _sse(error_body("internal error in tierwise while streaming", error_type="server_error"))
    finally:
        with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
            await served.aclose()  # frees the tier even when the client went away (this generator is cancelled)
        if served.usage and not charged:  # a broken or abandoned stream is charged for what it used
            charge(state, served, served.usage, api_key)
    yield b"data: [DONE]\n\n"


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
