"""Backends that misbehave, under concurrent clients: stalls, invalid answers, backends slow to answer or to
accept. Outcomes only (no timing asserts): every request ends within a generous bound, with a clear status or
error event, and failover happens when another tier may serve."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.conftest import openai_tier
from tests.reliability.streams import chat, send_all
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app

CLOUD = {"location": "cloud", "cost": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}}


@pytest.fixture
def two_stubs() -> Iterator[tuple[tuple[str, StubBehavior], tuple[str, StubBehavior]]]:
    """(edge URL, behaviour), (cloud URL, behaviour): the edge is the one made to misbehave."""
    edge, cloud = StubBehavior(), StubBehavior(pieces=["cloud", " answer"])
    with serve_in_thread(create_stub_app(edge)) as a, serve_in_thread(create_stub_app(cloud)) as b:
        yield (f"{a}/v1", edge), (f"{b}/v1", cloud)


def test_stalls_mid_stream_end_in_error_events_for_every_client(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.mode, behavior.record = "stall", False
    url = run_gateway({"tiers": [openai_tier("edge", base, read_timeout_s=0.3, max_concurrent=32)]})
    results = send_all(url, [chat("edge")] * 24, concurrency=24)
    for r in results:
        assert r.status == 200 and not r.hung and r.done, r
        assert r.text == "Hello from"  # what was streamed before the stall stays delivered
        assert "stalled mid-answer" in r.error_event["message"]


@pytest.mark.parametrize("mode", ["invalid_json", "no_choices"])
def test_invalid_answers_are_502_when_pinned_and_fail_over_when_routed(two_stubs, run_gateway, mode):
    (edge_url, edge), (cloud_url, _) = two_stubs
    edge.mode = mode
    url = run_gateway({"tiers": [openai_tier("edge", edge_url), openai_tier("cloud", cloud_url, **CLOUD)],
                       "gateway": {"failure_threshold": 1000}})  # keep trying edge: every request meets the fault
    pinned = send_all(url, [chat("edge", stream=s) for s in (True, False)] * 4)
    for r in pinned:
        assert r.status == 502, r
        assert r.body["error"]["type"] == "upstream_error", r.body
        assert "tier 'edge' sent" in r.body["error"]["message"]
    routed = send_all(url, [chat("auto", stream=s) for s in (True, False)] * 4)
    for r in routed:
        assert r.clean and r.tier == "cloud" and r.text == "cloud answer", r
        assert r.report["failover"][0]["tier"] == "edge"
        assert "tier 'edge' sent" in r.report["failover"][0]["error"]


def test_backend_slow_to_answer_times_out_before_its_first_byte(two_stubs, run_gateway):
    """The backend accepts the connection and reads the request, but sends no header for 2 s."""
    (edge_url, edge), (cloud_url, _) = two_stubs
    edge.header_delay_s = 2.0
    url = run_gateway({"tiers": [openai_tier("edge", edge_url, read_timeout_s=0.3),
                                 openai_tier("cloud", cloud_url, **CLOUD)],
                       "gateway": {"failure_threshold": 1000}})
    pinned = send_all(url, [chat("edge", stream=s) for s in (True, False)] * 4, concurrency=8)
    for r in pinned:
        assert r.status == 503 and not r.hung, r
        assert "timed out before answering" in r.body["error"]["message"]
    routed = send_all(url, [chat("auto", stream=s) for s in (True, False)] * 4, concurrency=8)
    for r in routed:
        assert r.clean and r.tier == "cloud", r
        assert "timed out" in r.report["failover"][0]["error"]


@pytest.fixture
def full_backlog() -> Iterator[str]:
    """A port that listens but never accepts, its accept queue already full: new SYNs are dropped, so a connect
    neither succeeds nor is refused; it times out. (What a backend too busy to accept looks like.)"""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)  # takes the one queue slot
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        filler.close()
        server.close()


def test_backend_that_never_accepts_times_out_on_connect(full_backlog, stub_backend, run_gateway):
    cloud_url, _ = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", full_backlog, connect_timeout_s=0.3, retries=1,
                                             retry_backoff_s=0.01),
                                 openai_tier("cloud", cloud_url, **CLOUD)],
                       "gateway": {"failure_threshold": 1000}})
    pinned = send_all(url, [chat("edge", stream=s) for s in (True, False)] * 3, concurrency=6)
    for r in pinned:
        assert r.status == 503 and not r.hung, r
        assert "unreachable: ConnectionTimeoutError" in r.body["error"]["message"]
    routed = send_all(url, [chat("auto", stream=s) for s in (True, False)] * 3, concurrency=6)
    for r in routed:
        assert r.clean and r.tier == "cloud", r


def test_a_stream_read_to_its_end_keeps_its_backend_connection(stub_backend, run_gateway):
    """The gateway reads past [DONE] so that httpx pools the connection: a new TCP connection per request would
    cost every request a connect and, at a few hundred requests/s, exhaust the ephemeral ports (TIME_WAIT)."""
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    results = send_all(url, [chat("edge", stream=s) for s in (True, False)] * 10, concurrency=1)
    assert all(r.clean for r in results)
    assert len(behavior.received) == 20 and len(behavior.peers) <= 2  # 2: a health probe may overlap


def _open_after_done_app() -> Starlette:
    """A backend that sends a complete answer and [DONE], then keeps the response body open."""

    async def events() -> AsyncIterator[bytes]:
        for delta, finish in (({"role": "assistant", "content": "done"}, None), ({}, "stop")):
            chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                     "finish_reason": finish}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"
        await asyncio.sleep(2)

    async def chat_route(request: Request) -> StreamingResponse:
        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat_route, methods=["POST"])])


def test_a_body_left_open_after_done_still_ends_the_answer_cleanly(run_gateway):
    with serve_in_thread(_open_after_done_app()) as backend:
        url = run_gateway({"tiers": [openai_tier("edge", f"{backend}/v1", read_timeout_s=0.5)]})
        results = send_all(url, [chat("edge", stream=s) for s in (True, False)], concurrency=2)
    for r in results:
        assert r.clean and r.text == "done", r  # complete: no "stalled" error after a finished answer
