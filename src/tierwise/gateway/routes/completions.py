"""`POST /v1/completions`: legacy text completions of one text prompt, routed like chat.

The prompt is routed, policed (personal data, capabilities, budget, health), failed over and charged as the chat
request `TextCompletionRequest.as_chat()` makes of it; the tier that serves it answers with its text-completion
method (`Tier.complete_text`: llama.cpp's `create_completion` on the device, `/v1/completions` upstream), which
the dispatcher calls for a request that stands for a text completion (`Tier.answer`). Tiers without the
`text_completion` capability are skipped by `auto` and refused (400) when pinned. `echo` is done here, for every
tier. Streams are `text_completion` chunks; the last one carries the `tierwise` summary (cost, request id).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from tierwise.errors import InvalidRequest
from tierwise.gateway.auth import api_key
from tierwise.gateway.body import parse_body
from tierwise.gateway.disconnect import cancel_on_disconnect
from tierwise.gateway.encoding import JsonBody
from tierwise.gateway.errors import invalid_request_from
from tierwise.gateway.service import ChatService
from tierwise.gateway.streaming import ServedStream, sse_body
from tierwise.protocol import TextCompletionRequest, new_text_completion_id
from tierwise.tiers.base import Chunk

router = APIRouter()
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
async def completions(request: Request, key: str | None = Depends(api_key)) -> JSONResponse | StreamingResponse:
    service: ChatService = request.app.state.chat
    body = await parse_body(request, TextCompletionRequest)
    if (refused := body.refusal()) is not None:
        raise InvalidRequest(refused[1], param=refused[0])
    try:
        chat = body.as_chat()
    except ValidationError as err:
        raise invalid_request_from(err) from None
    if body.stream:
        stream = await cancel_on_disconnect(request, service.stream(chat, key))
        return ServedStream(stream, sse_body(stream, _ClientChunks(body, stream.served.tier.model_name)),
                            write_timeout_s=service.state.settings.gateway.client_write_timeout_s,
                            media_type="text/event-stream",
                            headers={**stream.trace.headers(), "Cache-Control": "no-cache"})
    answer, trace = await cancel_on_disconnect(request, service.collect(chat, key, TextAnswer))
    assert trace.tier is not None
    reply: dict[str, Any] = {
        "id": new_text_completion_id(), "object": "text_completion", "created": int(time.time()),
        "model": trace.tier.model_name, "choices": answer.choices(prefix=body.text if body.echo else ""),
    }
    if answer.usage is not None:
        reply["usage"] = answer.usage
    reply["tierwise"] = trace.report()
    return JsonBody(reply, headers=trace.headers())


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
