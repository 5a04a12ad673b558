"""A tier's queue is bounded: past it a request goes to the next tier, or gets 503 with Retry-After; an
upstream 429 reaches a pinned client as 429 with the upstream's Retry-After."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import openai_tier

BODY = {"model": "edge", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


async def _burst(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=20) as client:
        return await asyncio.gather(*(client.post(f"{url}/v1/chat/completions", json=BODY) for _ in range(n)))


def test_a_full_queue_answers_503_with_retry_after(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.header_delay_s = 0.5  # every answer takes 0.5 s: one slot + a queue of 2 holds 3 at once
    url = run_gateway({"tiers": [openai_tier("edge", base, max_concurrent=1, max_queue=2)]})
    responses = asyncio.run(_burst(url, 8))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 3 and statuses.count(503) == 5, statuses
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "max_queue" in refused.json()["error"]["message"]
    assert len(behavior.received) == 3  # the refused ones never reached the backend
    metrics = httpx.get(f"{url}/metrics").text
    assert 'tierwise_queue_rejections_total{tier="edge"} 5.0' in metrics
    health = httpx.get(f"{url}/healthz").json()
    assert health["tiers"]["edge"]["state"] == "up"  # load is not a fault


def test_a_request_waits_no_longer_than_queue_timeout(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.header_delay_s = 2.0
    url = run_gateway({"tiers": [openai_tier("edge", base, max_concurrent=1, queue_timeout_s=0.3)]})
    first, second = asyncio.run(_burst(url, 2))
    assert sorted([first.status_code, second.status_code]) == [200, 503]
    assert "queue_timeout_s" in (first if first.status_code == 503 else second).json()["error"]["message"]


def test_an_upstream_429_reaches_a_pinned_client_with_its_retry_after(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.mode, behavior.status = "error_status", 429
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    response = httpx.post(f"{url}/v1/chat/completions", json=BODY)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "upstream_rate_limited"
