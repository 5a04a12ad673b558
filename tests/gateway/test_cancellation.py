"""A client that leaves before the first chunk frees its tier at once (stub backend, one slot)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from tests.conftest import openai_tier

BODY = {"model": "edge", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_gone_before_the_first_chunk_frees_the_only_slot(stub_backend, run_gateway, stream):
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base, max_concurrent=1, read_timeout_s=30)]})
    behavior.header_delay_s = 3.0  # the backend takes 3 s to start answering
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", json={**BODY, "stream": stream}, timeout=0.5)
    behavior.header_delay_s = 0.0
    # Had the abandoned request kept the tier's only slot, this one would wait ~2.5 s for it.
    response = httpx.post(f"{url}/v1/chat/completions", json={**BODY, "stream": stream}, timeout=1.5)
    assert response.status_code == 200
    assert len(behavior.received) == 2


def test_a_client_that_stops_reading_is_cut_off_and_frees_the_slot(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.pieces = ["x" * 20_000] * 600  # 12 MB: more than every socket buffer on the way holds
    behavior.record = False
    url = run_gateway({"tiers": [openai_tier("edge", base, max_concurrent=1, read_timeout_s=30)],
                       "gateway": {"client_write_timeout_s": 0.5}})
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({**BODY, "stream": True}).encode()
    with socket.socket() as reader:
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect(("127.0.0.1", port))
        reader.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        reader.recv(1024)  # the answer has started; from now on this client reads nothing
        behavior.pieces = ["Hello"]
        deadline = time.monotonic() + 15
        while True:  # the only slot is free again once the stuck stream was cut off
            response = httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=2.0)
            if response.status_code == 200:
                break
            assert time.monotonic() < deadline, "a client that stopped reading still holds the tier's slot"


def test_a_client_gone_while_queued_never_reaches_the_backend(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.header_delay_s = 1.5  # the first request holds the only slot for 1.5 s
    url = run_gateway({"tiers": [openai_tier("edge", base, max_concurrent=1, read_timeout_s=30)]})

    async def scenario() -> int:
        async with httpx.AsyncClient(timeout=10) as client:
            first = asyncio.create_task(client.post(f"{url}/v1/chat/completions", json=BODY))
            await asyncio.sleep(0.3)
            with pytest.raises(httpx.ReadTimeout):  # the second waits in the tier's queue, then gives up
                await client.post(f"{url}/v1/chat/completions", json=BODY, timeout=0.5)
            return (await first).status_code

    assert asyncio.run(scenario()) == 200
    time.sleep(0.5)  # had it stayed queued, it would have reached the backend once the slot was free
    assert len(behavior.received) == 1
