"""Backends whose answers never end: a JSON body without end, an endless event stream for a non-streaming request,
an HTML page. Each is cut at the tier's bounds (`max_answer_bytes`, `max_answer_s`) with a clear error, and the
gateway's memory stays bounded. Bounded in time: the backends stop by themselves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import openai_tier
from tests.reliability.streams import chat, send_all
from tierwise.testing.servers import serve_in_thread

_BACKEND_LIFETIME_S = 10  # every endless answer ends by itself after this long


def _endless_app(kind: str) -> Starlette:
    async def endless_json() -> AsyncIterator[bytes]:
        yield b'{"choices": [{"index": 0, "message": {"content": "'
        block = b"a" * 65536
        loop = asyncio.get_running_loop()
        stop = loop.time() + _BACKEND_LIFETIME_S
        while loop.time() < stop:
            yield block
            await asyncio.sleep(0)

    async def endless_events(size: int, pause_s: float) -> AsyncIterator[bytes]:
        piece = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x" * size}}]}
        line = f"data: {json.dumps(piece)}\n\n".encode()
        loop = asyncio.get_running_loop()
        stop = loop.time() + _BACKEND_LIFETIME_S
        while loop.time() < stop:
            yield line
            await asyncio.sleep(pause_s)

    async def route(request: Request) -> Response:
        if kind == "json":
            return StreamingResponse(endless_json(), media_type="application/json")
        if kind == "events":  # fast and large: the byte bound is reached first
            return StreamingResponse(endless_events(16000, 0.001), media_type="text/event-stream")
        if kind == "trickle":  # a few bytes now and then: read_timeout_s never fires
            return StreamingResponse(endless_events(1, 0.05), media_type="text/event-stream")
        return Response("<html><body>Bad gateway page</body></html>", media_type="text/html")

    return Starlette(routes=[Route("/v1/chat/completions", route, methods=["POST"])])


@pytest.mark.parametrize("kind", ["json", "events"])
def test_an_answer_without_end_is_cut_at_the_byte_bound(run_gateway, kind):
    with serve_in_thread(_endless_app(kind)) as backend:
        url = run_gateway({"tiers": [openai_tier("edge", f"{backend}/v1", max_answer_bytes=2 * 1024 * 1024,
                                                 read_timeout_s=20)]})
        results = send_all(url, [chat("edge", stream=False)] * 2, concurrency=2, bound_s=30)
    for r in results:  # (the gateway's memory under such a backend is measured in bench/unbounded_upstream.py)
        assert r.status == 502 and not r.hung, r
        assert "max_answer_bytes" in r.body["error"]["message"]


def test_an_answer_that_trickles_for_ever_is_cut_at_the_time_bound(run_gateway):
    with serve_in_thread(_endless_app("trickle")) as backend:
        url = run_gateway({"tiers": [openai_tier("edge", f"{backend}/v1", max_answer_s=1.5)]})
        streamed, complete = send_all(url, [chat("edge", stream=True), chat("edge", stream=False)],
                                      concurrency=2, bound_s=30)
    assert streamed.status == 200 and streamed.done and "max_answer_s" in streamed.error_event["message"]
    assert complete.status == 502 and "max_answer_s" in complete.body["error"]["message"]


def test_an_html_page_is_an_unusable_answer_not_an_outage(run_gateway):
    with serve_in_thread(_endless_app("html")) as backend:
        url = run_gateway({"tiers": [openai_tier("edge", f"{backend}/v1")]})
        results = send_all(url, [chat("edge", stream=s) for s in (True, False)])
    for r in results:
        assert r.status == 502 and r.body["error"]["type"] == "upstream_error", r
        assert "text/html" in r.body["error"]["message"]
