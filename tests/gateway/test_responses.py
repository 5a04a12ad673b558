"""`/v1/responses` through the stock openai SDK: mapped onto the chat path (routing, policies, failover hold)."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import openai_tier, sdk


@pytest.fixture
def gateway(stub_backend, run_gateway):
    base, behavior = stub_backend
    return run_gateway({"tiers": [openai_tier("edge", base, cost={"output_per_mtok": 1000.0})]}), behavior


def test_responses_create_answers_through_the_chat_path(gateway):
    url, behavior = gateway
    reply = sdk(url).responses.create(model="auto", input="Say hello", instructions="Be brief.",
                                      max_output_tokens=16)
    assert reply.output_text == "Hello from the stub."
    assert reply.status == "completed" and reply.usage.output_tokens == 5
    sent = behavior.received[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    assert sent["max_tokens"] == 16
    assert reply.model_extra["tierwise"]["tier"] == "edge" and reply.model_extra["tierwise"]["cost_usd"] > 0


def test_responses_stream_as_responses_events(gateway):
    url, _ = gateway
    events = list(sdk(url).responses.create(
        model="auto", input=[{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}],
        stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello from the stub." and events[-1].response.output_text == text


@pytest.mark.parametrize("fields", [{"previous_response_id": "resp_1"}, {"tools": [{"type": "web_search"}]},
                                    {"input": [{"role": "user", "content": [{"type": "input_image"}]}]}])
def test_what_a_stateless_gateway_cannot_do_is_a_clear_400(gateway, fields):
    url, _ = gateway
    with pytest.raises(openai.BadRequestError):
        sdk(url).responses.create(**{"model": "auto", "input": "hi", **fields})


def test_reasoning_effort_is_routed_to_a_tier_that_reasons(stub_backend, run_gateway):
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base), openai_tier("thinker", base, location="cloud",
                                                                          capabilities={"reasoning": True})]})
    reply = sdk(url).responses.create(model="auto", input="Prove it", reasoning={"effort": "high"})
    assert reply.model_extra["tierwise"]["tier"] == "thinker"  # the edge, cheaper, cannot reason
    assert behavior.received[-1]["reasoning_effort"] == "high"
    with pytest.raises(openai.BadRequestError, match="reasoning"):
        sdk(url).responses.create(model="edge", input="Prove it", reasoning={"effort": "high"})
