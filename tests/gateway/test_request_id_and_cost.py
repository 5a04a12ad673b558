"""One request id end to end, and the cost where clients can read it (a header, the stream's last chunk)."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import openai_tier, sdk

MESSAGES = [{"role": "user", "content": "hi"}]
PRICED = {"cost": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}}


def test_a_clients_request_id_is_echoed_reported_and_sent_on(stub_backend, run_gateway):
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    raw = sdk(url).chat.completions.with_raw_response.create(
        model="edge", messages=MESSAGES, extra_headers={"x-request-id": "trace-42"})
    assert raw.headers["x-request-id"] == "trace-42"
    assert raw.parse().model_extra["tierwise"]["request_id"] == "trace-42"
    assert behavior.request_ids == ["trace-42"]


def test_a_request_id_is_made_when_absent_or_unusable_and_errors_carry_it(stub_backend, run_gateway):
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    made = httpx.post(f"{url}/v1/chat/completions", json={"model": "edge", "messages": MESSAGES})
    uuid.UUID(made.headers["x-request-id"])  # a UUID: every backend accepts it (llama.cpp's server wants one)
    assert behavior.request_ids == [made.headers["x-request-id"]]
    odd = httpx.post(f"{url}/v1/chat/completions", json={"model": "edge", "messages": MESSAGES},
                     headers={"x-request-id": "bad id\twith spaces"})
    assert odd.headers["x-request-id"] != "bad id\twith spaces"
    refused = httpx.post(f"{url}/v1/chat/completions", json={"model": "nope", "messages": MESSAGES},
                         headers={"x-request-id": "trace-404"})
    assert refused.status_code == 404 and refused.headers["x-request-id"] == "trace-404"


def test_the_cost_is_in_a_header_and_in_the_streams_last_chunk(stub_backend, run_gateway):
    base, _ = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base, **PRICED)]})
    client = sdk(url)
    raw = client.chat.completions.with_raw_response.create(model="edge", messages=MESSAGES)
    cost = raw.parse().model_extra["tierwise"]["cost_usd"]
    assert cost > 0 and float(raw.headers["x-tierwise-cost-usd"]) == cost
    plain = list(client.chat.completions.create(model="edge", messages=MESSAGES, stream=True))
    assert all(c.choices for c in plain)  # no extra chunk for clients that read choices[0] of every chunk
    assert plain[-1].choices[0].finish_reason == "stop"
    assert plain[-1].model_extra["tierwise"]["cost_usd"] == cost
    with_usage = list(client.chat.completions.create(model="edge", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": True}))
    assert with_usage[-1].usage is not None and not with_usage[-1].choices
    assert with_usage[-1].model_extra["tierwise"]["cost_usd"] == cost
