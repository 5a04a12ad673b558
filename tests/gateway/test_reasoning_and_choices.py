"""Reasoning requests and `n` > 1 through the stock openai SDK against the stub backend: routed to the tiers that
can serve them, mapped to each backend's dialect, every choice kept on the streaming and non-streaming paths."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import openai_tier, sdk

SUM = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture
def gateway(stub_backend, run_gateway):
    base, behavior = stub_backend
    tiers = [openai_tier("edge", base, dialect="llama_cpp"),  # one choice, no reasoning
             openai_tier("cloud", base, location="cloud", dialect="vllm", capabilities={"reasoning": True},
                         cost={"output_per_mtok": 10.0})]
    return run_gateway({"tiers": tiers}), behavior


def test_a_reasoning_request_goes_to_the_tier_that_reasons_in_its_dialect(gateway):
    url, behavior = gateway
    raw = sdk(url).chat.completions.with_raw_response.create(
        model="auto", messages=SUM, reasoning_effort="high", extra_body={"thinking_token_budget": 64})
    assert raw.headers["x-tierwise-tier"] == "cloud"
    assert "edge" in raw.parse().model_extra["tierwise"]["excluded"]
    sent = behavior.received[-1]
    assert sent["reasoning_effort"] == "high" and sent["thinking_token_budget"] == 64
    assert sent["chat_template_kwargs"] == {"thinking_budget": 64}
    plain = sdk(url).chat.completions.with_raw_response.create(model="auto", messages=SUM)
    assert plain.headers["x-tierwise-tier"] == "edge"  # the cheaper tier, when nobody asks for reasoning


def test_a_reasoning_request_pinned_to_a_tier_that_cannot_reason_is_a_400(gateway):
    url, behavior = gateway
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(url).chat.completions.create(model="edge", messages=SUM, reasoning_effort="low")
    assert caught.value.code == "unsupported_capability" and "reasoning" in caught.value.message
    assert not behavior.received


def test_several_choices_are_served_where_the_backend_can_and_all_are_kept(gateway):
    url, behavior = gateway
    client = sdk(url)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=SUM, n=3)
    whole = raw.parse()
    assert raw.headers["x-tierwise-tier"] == "cloud" and behavior.received[-1]["n"] == 3
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert {c.message.content for c in whole.choices} == {"Hello from the stub."}
    texts: dict[int, str] = {}
    finished: dict[int, str] = {}
    for chunk in client.chat.completions.create(model="auto", messages=SUM, n=2, stream=True):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finished[choice.index] = choice.finish_reason
    assert texts == {0: "Hello from the stub.", 1: "Hello from the stub."}
    assert finished == {0: "stop", 1: "stop"}


def test_several_choices_pinned_to_a_tier_that_answers_one_is_a_400(gateway):
    url, _ = gateway
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(url).chat.completions.create(model="edge", messages=SUM, n=2)
    assert caught.value.code == "unsupported_capability" and "n=2" in caught.value.message
