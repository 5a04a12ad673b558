"""The HTTP tier against a real local server that answers from a script: what counts as whose failure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tierwise.config import settings_from_dict
from tierwise.protocol import ChatCompletionRequest
from tierwise.testing.servers import serve_in_thread
from tierwise.tiers.base import TierRequestFailed, TierStreamBroken, TierUnavailable
from tierwise.tiers.openai_http import OpenAIHTTPTier, clean_upstream_message

Handler = Callable[[Request], Response]

TRACEBACK = (
    "1 validation error:\n  {'type': 'literal_error', 'msg': \"Input should be 'text' or 'json_object'\"}\n\n"
    '  File "/srv/venv/lib/python3.11/site-packages/llama_cpp/server/app.py", line 376, in create_chat_completion\n'
    "    POST /v1/chat/completions"
)


@contextmanager
def _tier(handler: Handler, **extra) -> Iterator[OpenAIHTTPTier]:
    """An HTTP tier whose server answers every request (any path) with `handler(request)`."""

    async def endpoint(request: Request) -> Response:
        return handler(request)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    with serve_in_thread(app) as url:
        config = settings_from_dict({"tiers": [{"name": "edge", "location": "edge", "backend": "openai",
                                                "base_url": f"{url}/v1", "model": "m", "retries": 0, **extra}]})
        yield OpenAIHTTPTier(config.tiers[0])  # type: ignore[arg-type]


def _run(tier: OpenAIHTTPTier, **fields):
    request = ChatCompletionRequest.model_validate(
        {"model": "edge", "messages": [{"role": "user", "content": "hi"}], **fields})

    async def main():
        await tier.start()
        try:
            return [chunk async for chunk in tier.generate(request)]
        finally:
            await tier.aclose()

    return asyncio.run(main())


def _sse(*events: str) -> Response:
    return Response("".join(f"data: {e}\n\n" for e in events), media_type="text/event-stream")


def _chunk(content: str | None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    return json.dumps({"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]})


def test_a_bare_done_without_finish_reason_is_a_broken_stream():
    answer = _sse(_chunk("Once"), _chunk(" upon"), "[DONE]")
    with _tier(lambda request: answer) as tier, pytest.raises(TierStreamBroken, match="before finishing"):
        _run(tier, stream=True)


def test_a_finished_stream_without_usage_gets_an_estimate():
    with _tier(lambda request: _sse(_chunk("Hi"), _chunk(None, "stop"), "[DONE]")) as tier:
        usage = _run(tier, stream=True)[-1]["usage"]
    assert usage["completion_tokens"] == 1 and usage["estimated"] is True and usage["prompt_tokens"] > 0


@pytest.mark.parametrize(("models_status", "error"), [(200, TierRequestFailed), (503, TierUnavailable)])
def test_a_5xx_is_the_requests_fault_only_while_the_server_is_healthy(models_status, error):
    def handler(request: Request) -> Response:
        if request.url.path.endswith("/models"):
            return JSONResponse({"data": []}, models_status)
        return JSONResponse({"error": {"message": TRACEBACK}}, 500)

    with _tier(handler) as tier, pytest.raises(error) as caught:
        _run(tier)
    assert 'File "' not in caught.value.message and "/srv/" not in caught.value.message
    assert "Input should be 'text' or 'json_object'" in caught.value.message
    assert isinstance(caught.value, TierRequestFailed) == (models_status == 200)


def test_upstream_messages_lose_tracebacks_and_paths():
    assert clean_upstream_message(TRACEBACK).startswith("1 validation error: {'type': 'literal_error'")
    assert "…" in clean_upstream_message("failed in /opt/server/engine.py at step 3")
    assert len(clean_upstream_message("x" * 5000)) == 300
    assert clean_upstream_message("") == "no detail given"
