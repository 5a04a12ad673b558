"""Client (stock openai SDK) → gateway → device tier (llama.cpp in-process) and edge tier (llama.cpp's
OpenAI server, a real process) → back. And failover when the edge server is killed."""

from __future__ import annotations

import signal

import openai
import pytest

from tests.conftest import llama_tier, needs_llama_cpp, openai_tier, sdk
from tierwise.testing.servers import free_port, start_llama_server, stop_process, wait_until_ready

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "hello world"}]


@pytest.fixture
def gateway(tiny_gguf, llama_server, run_gateway):
    return run_gateway({"tiers": [
        llama_tier("device", tiny_gguf, logits_all=True),  # the streaming test asks for logprobs
        openai_tier("edge", llama_server, cost={"input_per_mtok": 0.02, "output_per_mtok": 0.06}, read_timeout_s=30),
    ]})


@pytest.mark.parametrize("tier", ["device", "edge"])
def test_non_streaming_through_each_tier(gateway, tier):
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model=tier, messages=MESSAGES, max_tokens=8, seed=3, temperature=0.8)
    completion = raw.parse()
    assert raw.headers["x-tierwise-tier"] == tier
    assert completion.choices[0].message.content
    assert completion.usage.completion_tokens <= 8
    report = completion.model_extra["tierwise"]
    assert report["tier"] == tier and report["router"] == "pinned"
    assert report["location"] == tier


@pytest.mark.parametrize("tier", ["device", "edge"])
def test_streaming_through_each_tier(gateway, tier):
    stream = sdk(gateway).chat.completions.create(
        model=tier, messages=MESSAGES, max_tokens=8, stream=True, seed=3, logprobs=True, top_logprobs=1)
    chunks = list(stream)
    assert chunks[0].model_extra["tierwise"]["tier"] == tier
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert any(c.choices and c.choices[0].logprobs for c in chunks)


def test_logprobs_go_only_to_a_tier_that_can_serve_them(tiny_gguf, llama_server, run_gateway):
    url = run_gateway({"tiers": [llama_tier("device", tiny_gguf),  # logits_all off, the default: no logprobs
                                 openai_tier("edge", llama_server, read_timeout_s=30)]})
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(url).chat.completions.create(model="device", messages=MESSAGES, max_tokens=4, logprobs=True)
    assert caught.value.code == "unsupported_capability" and "logprobs" in caught.value.message
    answer = sdk(url).chat.completions.create(model="auto", messages=MESSAGES, max_tokens=4, logprobs=True)
    assert answer.model_extra["tierwise"]["tier"] == "edge"  # skipped the device, which would fail it
    plain = sdk(url).chat.completions.create(model="auto", messages=MESSAGES, max_tokens=4)
    assert plain.model_extra["tierwise"]["tier"] == "device"  # without logprobs the cheapest tier serves


def test_auto_routes_to_the_cheapest_healthy_tier(gateway):
    completion = sdk(gateway).chat.completions.create(model="auto", messages=MESSAGES, max_tokens=4)
    report = completion.model_extra["tierwise"]
    assert report["tier"] == "device" and report["router"] == "cheapest-healthy"
    assert report["fallbacks"] == ["edge"]


def test_failover_when_the_edge_server_is_killed(tiny_gguf, llama_server, run_gateway):
    needs_llama_cpp()
    port = free_port()
    edge = start_llama_server(str(tiny_gguf), port=port)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/v1/models", timeout_s=60, process=edge)
        url = run_gateway({"tiers": [
            openai_tier("edge", f"http://127.0.0.1:{port}/v1", cost={"input_per_mtok": 0.02}),
            openai_tier("cloud", llama_server, location="cloud", cost={"input_per_mtok": 1.0}),
        ]})
        client = sdk(url)
        before = client.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=4)
        assert before.model_extra["tierwise"]["tier"] == "edge"

        edge.send_signal(signal.SIGKILL)
        edge.wait(timeout=10)

        raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES, max_tokens=4)
        after = raw.parse()
        assert raw.headers["x-tierwise-tier"] == "cloud"
        assert after.model_extra["tierwise"]["failover"][0]["tier"] == "edge"
        assert after.choices[0].message.content
        streamed = list(client.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=4, stream=True))
        assert streamed[0].model_extra["tierwise"]["tier"] == "cloud"
        with pytest.raises(openai.InternalServerError) as caught:  # pinned: no fallback, a clear 503
            client.chat.completions.create(model="edge", messages=MESSAGES, max_tokens=4)
        assert caught.value.status_code == 503
    finally:
        stop_process(edge)
