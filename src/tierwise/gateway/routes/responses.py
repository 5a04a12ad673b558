"""`POST /v1/responses`: the stateless core of OpenAI's Responses API, mapped onto the chat path.

`input` (a string, or message items with `input_text` parts) and `instructions` become chat messages,
`max_output_tokens` the output limit; the request is then routed, policed, failed over and charged exactly as a
chat completion. The answer comes back as a `response` object, or — with `stream: true` — as Responses events
(`response.created`, `response.output_text.delta`, `response.output_text.done`, `response.completed`).
Refused with a 400: `previous_response_id` and `conversation` (nothing is stored), `tools`, `background`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tierwise.errors import InvalidRequest, TierwiseError
from tierwise.gateway.body import parse_body
from tierwise.gateway.disconnect import cancel_on_disconnect
from tierwise.gateway.dispatch import Served
from tierwise.gateway.errors import invalid_request_from
from tierwise.gateway.route_plan import RoutePlan, plan_route
from tierwise.gateway.routes.chat import ServedStream, charge, collect_answer
from tierwise.gateway.state import GatewayState
from tierwise.protocol import ChatCompletionRequest, error_body

router = APIRouter()
_REFUSED = ("previous_response_id", "conversation", "tools", "background")


class ResponsesRequest(BaseModel):
    """`POST /v1/responses` body: the fields mapped onto chat; others are refused or ignored (see the module)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False

    def to_chat(self) -> ChatCompletionRequest:
        for name in _REFUSED:
            if (self.model_extra or {}).get(name):
                raise InvalidRequest(f"{name}: not supported by this gateway's /v1/responses (it is stateless, "
                                     "without tools); use /v1/chat/completions", param=name)
        messages = [{"role": "system", "content": self.instructions}] if self.instructions else []
        items = [{"role": "user", "content": self.input}] if isinstance(self.input, str) else self.input
        messages += [{"role": item.get("role", "user"), "content": _text(item)} for item in items]
        chat = {"model": self.model, "messages": messages, "stream": self.stream, "max_tokens": self.max_output_tokens,
                "temperature": self.temperature, "top_p": self.top_p}
        try:
            return ChatCompletionRequest.model_validate({k: v for k, v in chat.items() if v is not None})
        except ValidationError as err:
            raise invalid_request_from(err) from None


def _text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict)]
        if any(p.get("type") not in {"input_text", "output_text", "text"} for p in parts):
            raise InvalidRequest("input: only text parts are supported on /v1/responses", param="input")
        return "\n".join(str(p.get("text") or "") for p in parts)
    raise InvalidRequest("input: each item needs a role and text content", param="input")


@router.post("/v1/responses", response_model=None)
async def responses(request: Request) -> JSONResponse | StreamingResponse:
    state: GatewayState = request.app.state.tierwise
    api_key = state.auth.key_of(request)
    body = await parse_body(request, ResponsesRequest)
    chat = body.to_chat()
    await state.admit(chat, api_key)  # [state hook] rate limits (429 + Retry-After) and budget reservation
    plan = await plan_route(state, chat, api_key)
    if chat.stream:
        return await cancel_on_disconnect(request, _stream(state, chat, plan, api_key))
    return await cancel_on_disconnect(request, _complete(state, chat, plan, api_key))


def _response(chat: ChatCompletionRequest, served: Served, text: str, usage: dict[str, Any] | None,
              *, response_id: str, item_id: str, status: str, report: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = int((usage or {}).get("prompt_tokens") or 0), int((usage or {}).get("completion_tokens") or 0)
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
        "model": served.tier.model_name, "max_output_tokens": chat.token_limit,
        "output": [{"type": "message", "id": item_id, "role": "assistant", "status": status,
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "parallel_tool_calls": False, "tool_choice": "none", "tools": [],
        "usage": {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion},
        "tierwise": report,
    }


async def _complete(state: GatewayState, chat: ChatCompletionRequest, plan: RoutePlan, api_key: str | None
                    ) -> JSONResponse:
    served, builder = await collect_answer(state, chat, list(plan.order), plan)
    answer = builder.build(completion_id="", model=served.tier.model_name)["choices"][0]
    report = {**plan.info, "tier": served.tier.name}
    if builder.usage:
        report["cost_usd"] = charge(state, served, builder.usage, api_key)
    status = "incomplete" if answer.get("finish_reason") == "length" else "completed"
    body = _response(chat, served, answer["message"].get("content") or "", builder.usage,
                     response_id=f"resp_{uuid.uuid4().hex}", item_id=f"msg_{uuid.uuid4().hex}", status=status,
                     report=report)
    return JSONResponse(body, headers={"x-tierwise-tier": served.tier.name})


async def _stream(state: GatewayState, chat: ChatCompletionRequest, plan: RoutePlan, api_key: str | None
                  ) -> StreamingResponse:
    served = await state.dispatcher.open(chat, plan.order, skip_down=not plan.pinned,
                                         excluded=plan.info.get("excluded"))
    return ServedStream(served, _events(state, chat, served, plan, api_key),
                        write_timeout_s=state.settings.gateway.client_write_timeout_s,
                        media_type="text/event-stream", headers={"x-tierwise-tier": served.tier.name})


async def _events(state: GatewayState, chat: ChatCompletionRequest, served: Served, plan: RoutePlan,
                  api_key: str | None) -> AsyncIterator[bytes]:
    ids = {"response_id": f"resp_{uuid.uuid4().hex}", "item_id": f"msg_{uuid.uuid4().hex}"}
    report = {**plan.info, "tier": served.tier.name}
    sequence = iter(range(1_000_000_000))
    pieces: list[str] = []

    def event(kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": next(sequence), **fields}
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

    yield event("response.created", response=_response(chat, served, "", None, status="in_progress",
                                                        report=report, **ids))
    delta_at = {"item_id": ids["item_id"], "output_index": 0, "content_index": 0}
    charged = False
    try:
        for text in _contents(served.first):
            pieces.append(text)
            yield event("response.output_text.delta", delta=text, logprobs=[], **delta_at)
        async for chunk in served.rest:
            for text in _contents(chunk):
                pieces.append(text)
                yield event("response.output_text.delta", delta=text, logprobs=[], **delta_at)
        text = "".join(pieces)
        yield event("response.output_text.done", text=text, logprobs=[], **delta_at)
        if served.usage:
            charged = True
            report["cost_usd"] = charge(state, served, served.usage, api_key)
        yield event("response.completed", response=_response(chat, served, text, served.usage, status="completed",
                                                              report=report, **ids))
    except TierwiseError as err:
        yield event("error", **error_body(err.message, error_type=err.error_type, code=err.code)["error"])
    finally:
        if served.usage and not charged:  # a broken or abandoned answer is charged for what it used
            charge(state, served, served.usage, api_key)


def _contents(chunk: dict[str, Any]) -> list[str]:
    return [c["delta"]["content"] for c in chunk.get("choices") or [] if (c.get("delta") or {}).get("content")]
