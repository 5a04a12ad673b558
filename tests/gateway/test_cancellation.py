"""A client that leaves before the first chunk frees its tier at once (stub backend, one slot)."""

from __future__ import annotations

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
