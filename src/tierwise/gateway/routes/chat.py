"""`POST /v1/chat/completions`: parse the body, let `ChatService` answer it, write the answer (JSON or SSE)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tierwise.gateway.auth import api_key
from tierwise.gateway.body import parse_body
from tierwise.gateway.disconnect import cancel_on_disconnect
from tierwise.gateway.encoding import JsonBody
from tierwise.gateway.service import ChatService
from tierwise.gateway.streaming import ServedStream, sse_body
from tierwise.protocol import ChatCompletionRequest

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    request: Request, key: str | None = Depends(api_key)
) -> JSONResponse | StreamingResponse:
    service: ChatService = request.app.state.chat
    chat = await parse_body(request, ChatCompletionRequest)
    # Until the first byte of the answer is sent, only a listener notices a client that left: without it an
    # abandoned request keeps its tier busy generating an answer nobody will read.
    if chat.stream:
        stream = await cancel_on_disconnect(request, service.stream(chat, key))
        return ServedStream(
            stream,
            sse_body(stream),
            write_timeout_s=service.state.settings.gateway.client_write_timeout_s,
            media_type="text/event-stream",
            headers={**stream.trace.headers(), "Cache-Control": "no-cache"},
        )
    completion = await cancel_on_disconnect(request, service.complete(chat, key))
    return JsonBody(completion.response_body(), headers=completion.trace.headers())
