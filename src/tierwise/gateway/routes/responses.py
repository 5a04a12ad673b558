"""`POST /v1/responses`: the stateless core of OpenAI's Responses API, mapped onto the chat path.

`input` (a string, or message items with `input_text` parts) and `instructions` become chat messages,
`max_output_tokens` the output limit, `reasoning.effort` the `reasoning_effort`; the request is then routed,
policed, failed over and charged exactly as a chat completion. The answer comes back as a `response` object, or —
with `stream: true` — as Responses events (`response.created`, `response.output_text.delta`,
`response.output_text.done`, `response.completed`).
Refused with a 400: `previous_response_id` and `conversation` (nothing is stored), `tools`, `background`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tierwise.errors import InvalidRequest, TierwiseError
from tierwise.gateway.auth import api_key
from tierwise.gateway.body import parse_body
from tierwise.gateway.disconnect import cancel_on_disconnect
from tierwise.gateway.encoding import JsonBody, sse_event
from tierwise.gateway.errors import invalid_request_from
from tierwise.gateway.service import ChatService
from tierwise.gateway.streaming import ChatStream, ServedStream
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
    reasoning: dict[str, Any] | None = None  # {"effort": "low" | "medium" | "high" | "none"}: routed as for chat

    def to_chat(self) -> ChatCompletionRequest:
        for name in _REFUSED:
            if (self.model_extra or {}).get(name):
                raise InvalidRequest(f"{name}: not supported by this gateway's /v1/responses (it is stateless, "
                                     "without tools); use /v1/chat/completions", param=name)
        messages = [{"role": "system", "content": self.instructions}] if self.instructions else []
        items = [{"role": "user", "content": self.input}] if isinstance(self.input, str) else self.input
        messages += [{"role": item.get("role", "user"), "content": _text(item)} for item in items]
        chat = {"model": self.model, "messages": messages, "stream": self.stream, "max_tokens": self.max_output_tokens,
                "temperature": self.temperature, "top_p": self.top_p,
                "reasoning_effort": (self.reasoning or {}).get("effort")}
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
async def responses(request: Request, key: str | None = Depends(api_key)) -> JSONResponse | StreamingResponse:
    service: ChatService = request.app.state.chat
    body = await parse_body(request, ResponsesRequest)
    chat = body.to_chat()
    if chat.stream:
        stream = await cancel_on_disconnect(request, service.stream(chat, key))
        return ServedStream(stream, _events(chat, stream),
                            write_timeout_s=service.state.settings.gateway.client_write_timeout_s,
                            media_type="text/event-stream", headers=stream.trace.headers())
    completion = await cancel_on_disconnect(request, service.complete(chat, key))
    answer = completion.body["choices"][0]
    status = "incomplete" if answer.get("finish_reason") == "length" else "completed"
    out = _response(chat, completion.body["model"], answer["message"].get("content") or "",
                    completion.body.get("usage"), response_id=f"resp_{uuid.uuid4().hex}",
                    item_id=f"msg_{uuid.uuid4().hex}", status=status, report=completion.trace.report())
    return JsonBody(out, headers=completion.trace.headers())


def _response(chat: ChatCompletionRequest, model: str, text: str, usage: dict[str, Any] | None,
              *, response_id: str, item_id: str, status: str, report: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = int((usage or {}).get("prompt_tokens") or 0), int((usage or {}).get("completion_tokens") or 0)
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
        "model": model, "max_output_tokens": chat.token_limit,
        "output": [{"type": "message", "id": item_id, "role": "assistant", "status": status,
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "parallel_tool_calls": False, "tool_choice": "none", "tools": [],
        "usage": {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion},
        "tierwise": report,
    }


async def _events(chat: ChatCompletionRequest, stream: ChatStream) -> AsyncIterator[bytes]:
    ids = {"response_id": f"resp_{uuid.uuid4().hex}", "item_id": f"msg_{uuid.uuid4().hex}"}
    model = stream.same["model"]
    sequence = iter(range(1_000_000_000))
    pieces: list[str] = []

    def event(kind: str, **fields: Any) -> bytes:
        return sse_event(kind, {"type": kind, "sequence_number": next(sequence), **fields})

    yield event("response.created", response=_response(chat, model, "", None, status="in_progress",
                                                        report=stream.trace.report(), **ids))
    delta_at = {"item_id": ids["item_id"], "output_index": 0, "content_index": 0}
    try:
        async for chunk in stream.chunks():
            for text in _contents(chunk):
                pieces.append(text)
                yield event("response.output_text.delta", delta=text, logprobs=[], **delta_at)
        text = "".join(pieces)
        yield event("response.output_text.done", text=text, logprobs=[], **delta_at)
        yield event("response.completed", response=_response(chat, model, text, stream.served.usage,
                                                              status="completed", report=stream.trace.report(),
                                                              **ids))
    except TierwiseError as err:
        yield event("error", **error_body(err.message, error_type=err.error_type, code=err.code)["error"])
    finally:
        await stream.aclose()


def _contents(chunk: dict[str, Any]) -> list[str]:
    return [c["delta"]["content"] for c in chunk.get("choices") or [] if (c.get("delta") or {}).get("content")]
