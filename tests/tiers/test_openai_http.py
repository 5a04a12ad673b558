"""The HTTP tier against a real local server that answers from a script: what counts as whose failure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tierwise.config import settings_from_dict
from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest
from tierwise.testing.servers import serve_in_thread
from tierwise.tiers.base import TierRejected, TierRequestFailed, TierStreamBroken, TierUnavailable
from tierwise.tiers.openai_http import OpenAIHTTPTier, TierBadResponse, clean_upstream_message

TRACEBACK = (
    "1 validation error:\n  {'type': 'literal_error', 'msg': \"Input should be 'text' or 'json_object'\"}\n\n"
    '  File "/srv/venv/lib/python3.11/site-packages/llama_cpp/server/app.py", line 376, in create_chat_completion\n'
    "    POST /v1/chat/completions"
)


@dataclass
class Received:
    """What the scripted server was sent."""

    path: str
    content: bytes


Handler = Callable[[Received], Response]


class _Script:
    url = ""
    handler: Handler | None = None


SCRIPT = _Script()


@pytest.fixture(scope="module", autouse=True)
def scripted_server() -> Iterator[None]:
    """One real server for the module; each test's tier sets the handler that answers it."""

    async def endpoint(request: Request) -> Response:
        assert SCRIPT.handler is not None
        return SCRIPT.handler(Received(request.url.path, await request.body()))

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    with serve_in_thread(app) as url:
        SCRIPT.url = url
        yield


def _tier(handler: Handler, **extra) -> OpenAIHTTPTier:
    SCRIPT.handler = handler
    config = settings_from_dict({"tiers": [{"name": "edge", "location": "edge", "backend": "openai",
                                            "base_url": f"{SCRIPT.url}/v1", "model": "m", "retries": 0, **extra}]})
    return OpenAIHTTPTier(config.tiers[0])  # type: ignore[arg-type]


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
    tier = _tier(lambda request: _sse(_chunk("Once"), _chunk(" upon"), "[DONE]"))
    with pytest.raises(TierStreamBroken, match="before finishing"):
        _run(tier, stream=True)


def test_a_finished_stream_without_usage_gets_an_estimate():
    tier = _tier(lambda request: _sse(_chunk("Hi"), _chunk(None, "stop"), "[DONE]"))
    usage = _run(tier, stream=True)[-1]["usage"]
    assert usage["completion_tokens"] == 1 and usage["estimated"] is True and usage["prompt_tokens"] > 0


@pytest.mark.parametrize(("models_status", "error"), [(200, TierRequestFailed), (503, TierUnavailable)])
def test_a_5xx_is_the_requests_fault_only_while_the_server_is_healthy(models_status, error):
    def handler(request: Received) -> Response:
        if request.path.endswith("/models"):
            return JSONResponse({"data": []}, models_status)
        return JSONResponse({"error": {"message": TRACEBACK}}, 500)

    with pytest.raises(error) as caught:
        _run(_tier(handler))
    assert 'File "' not in caught.value.message and "/srv/" not in caught.value.message
    assert "Input should be 'text' or 'json_object'" in caught.value.message
    assert isinstance(caught.value, TierRequestFailed) == (models_status == 200)


def test_upstream_messages_lose_tracebacks_and_paths():
    assert clean_upstream_message(TRACEBACK).startswith("1 validation error: {'type': 'literal_error'")
    assert "…" in clean_upstream_message("failed in /opt/server/engine.py at step 3")
    assert len(clean_upstream_message("x" * 5000)) == 300
    assert clean_upstream_message("") == "no detail given"


# ---- text completions and embeddings ---------------------------------------------------------------------------


def _text_chunk(text: str, finish: str | None = None) -> str:
    return json.dumps({"object": "text_completion", "choices": [
        {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]})


def _run_text(tier: OpenAIHTTPTier, **fields):
    request = TextCompletionRequest.model_validate({"model": "edge", "prompt": "Once upon a time", **fields})

    async def main():
        await tier.start()
        try:
            return [chunk async for chunk in tier.complete_text(request)]
        finally:
            await tier.aclose()

    return asyncio.run(main())


def test_a_text_completion_streams_from_the_completions_endpoint_with_usage_estimated_when_missing():
    seen = []

    def handler(request: Received) -> Response:
        seen.append((request.path, json.loads(request.content)))
        return _sse(_text_chunk(" there"), _text_chunk(" was", "length"), "[DONE]")

    chunks = _run_text(_tier(handler), stream=True, max_tokens=2)
    assert seen[0][0] == "/v1/completions" and seen[0][1]["prompt"] == "Once upon a time"
    assert [c["choices"][0]["text"] for c in chunks[:-1]] == [" there", " was"]
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and usage["completion_tokens"] == 2 and usage["estimated"] is True


def test_a_whole_text_completion_is_one_chunk_and_a_4xx_is_the_requests_fault():
    answer = {"object": "text_completion", "choices": [{"index": 0, "text": "x", "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}}
    assert _run_text(_tier(lambda request: JSONResponse(answer, 200))) == [answer]
    with pytest.raises(TierRejected) as caught:
        _run_text(_tier(lambda request: JSONResponse({"error": {"message": "bad prompt"}}, 400)))
    assert caught.value.status == 400 and "bad prompt" in caught.value.message


def test_a_text_stream_over_max_answer_bytes_is_cut_off():
    endless = _sse(*[_text_chunk("x" * 500)] * 20, _text_chunk("", "stop"), "[DONE]")
    with pytest.raises(TierStreamBroken, match="max_answer_bytes"):
        _run_text(_tier(lambda request: endless, max_answer_bytes=4096), stream=True)


def _embed(tier: OpenAIHTTPTier, texts: list[str]):
    async def main():
        await tier.start()
        try:
            return await tier.embed(texts)
        finally:
            await tier.aclose()

    return asyncio.run(main())


def test_embeddings_come_back_in_input_order_and_malformed_ones_are_the_upstreams_fault():
    data = [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]
    tier = _tier(lambda request: JSONResponse({"data": data}, 200), embedding_model="e")
    vectors, tokens = _embed(tier, ["first", "second"])
    assert vectors == [[1.0, 0.0], [0.0, 1.0]] and tokens >= 1  # no usage reported: estimated
    for bad in ({"data": data[:1]}, {"data": [{"index": 0, "embedding": [[1.0], [2.0]]}] * 2}, {"nothing": 1}):
        with pytest.raises(TierBadResponse):
            _embed(_tier(lambda request, bad=bad: JSONResponse(bad, 200), embedding_model="e"), ["a", "b"])
