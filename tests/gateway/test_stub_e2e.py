"""Gateway ↔ OpenAI-compatible HTTP tiers, with stub backends that answer at once or misbehave on purpose."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import openai_tier, sdk
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(url: str, **kwargs) -> openai.OpenAI:
    return sdk(url, **kwargs)


def test_unknown_fields_pass_through_both_ways(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.extra_delta = {"reasoning_content": "<think>"}
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    response = httpx.post(f"{url}/v1/chat/completions", json={
        "model": "edge", "messages": MESSAGES, "repetition_penalty": 1.2})
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello from the stub."
    assert body["choices"][0]["message"]["reasoning_content"] == "<think>" * 5
    assert body["usage"]["completion_tokens"] == 5
    assert behavior.received[-1]["repetition_penalty"] == 1.2
    assert behavior.received[-1]["model"] == "m"  # the tier's model name, not the tier name


def test_streaming_usage_only_when_asked(stub_backend, run_gateway):
    base, _ = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    chunks = list(client(url).chat.completions.create(model="edge", messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[0].model_extra["tierwise"]["tier"] == "edge"
    with_usage = list(client(url).chat.completions.create(
        model="edge", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert with_usage[-1].usage.completion_tokens == 5 and not with_usage[-1].choices


def test_retries_5xx_before_first_byte(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.fail_first = 2
    url = run_gateway({"tiers": [openai_tier("edge", base, retries=2, retry_backoff_s=0.01)]})
    completion = client(url).chat.completions.create(model="edge", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello from the stub."
    assert len(behavior.received) == 3


def test_failover_when_cheaper_tier_errors(run_gateway):
    broken, healthy = StubBehavior(mode="error_status"), StubBehavior(pieces=["cloud"])
    with serve_in_thread(create_stub_app(broken)) as a, serve_in_thread(create_stub_app(healthy)) as b:
        url = run_gateway({"tiers": [
            openai_tier("edge", f"{a}/v1"),
            openai_tier("cloud", f"{b}/v1", location="cloud", cost={"input_per_mtok": 1, "output_per_mtok": 2}),
        ]})
        raw = client(url).chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
        completion = raw.parse()
        assert raw.headers["x-tierwise-tier"] == "cloud"
        assert raw.headers["x-tierwise-failover"] == "edge"
        report = completion.model_extra["tierwise"]
        assert report["failover"][0]["tier"] == "edge" and "500" in report["failover"][0]["error"]
        assert completion.choices[0].message.content == "cloud"


@pytest.mark.parametrize("mode", ["invalid_json", "no_choices"])
def test_bad_upstream_responses_are_502_with_a_clear_message(stub_backend, run_gateway, mode):
    base, behavior = stub_backend
    behavior.mode = mode
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="edge", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "tier 'edge' sent" in caught.value.message


@pytest.mark.parametrize("mode", ["break", "error_event", "stall"])
def test_mid_stream_failure_ends_with_error_event(stub_backend, run_gateway, mode):
    base, behavior = stub_backend
    behavior.mode = mode
    url = run_gateway({"tiers": [openai_tier("edge", base, read_timeout_s=0.5)]})
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=10,
                      json={"model": "edge", "messages": MESSAGES, "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
    assert response.status_code == 200
    assert '"content":"Hello"' in lines[1]
    assert '"error"' in lines[-2] and lines[-1] == "data: [DONE]"
    # the stock SDK raises on the error event instead of hanging or silently truncating
    stream = client(url).chat.completions.create(model="edge", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError):
        list(stream)


def test_inline_think_tags_become_reasoning_content_on_a_configured_tier(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.pieces = ["<think>", "small ", "numbers", "</think>", "It is ", "5."]
    url = run_gateway({"tiers": [openai_tier("r1", base, think_tags=True)]})
    complete = client(url).chat.completions.create(model="r1", messages=MESSAGES)
    message = complete.choices[0].message
    assert message.content == "It is 5." and message.model_extra["reasoning_content"] == "small numbers"
    chunks = list(client(url).chat.completions.create(model="r1", messages=MESSAGES, stream=True))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    assert reasoning == "small numbers"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "It is 5."


def test_reasoning_content_from_the_backend_is_passed_through(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.extra_delta = {"reasoning_content": "thinking…"}
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    message = client(url).chat.completions.create(model="edge", messages=MESSAGES).choices[0].message
    assert message.model_extra["reasoning_content"].startswith("thinking…")
