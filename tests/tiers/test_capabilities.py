"""What a request needs, and what a tier lacks for it."""

from __future__ import annotations

from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest
from tierwise.tiers.capabilities import Capabilities, estimated_prompt_tokens
from tierwise.tiers.usage import PromptOverhead

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def _request(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields})


def test_a_plain_request_needs_nothing_special():
    assert Capabilities(tools=False, response_format=False, images=False).missing_for(_request()) == []


def test_each_need_is_named_when_missing():
    bare = Capabilities(tools=False, response_format=False, images=False, context_length=100)
    assert bare.missing_for(_request(tools=TOOLS)) == ["tools"]
    assert bare.missing_for(_request(tools=TOOLS, tool_choice="none")) == []  # tools switched off
    assert bare.missing_for(_request(response_format={"type": "json_schema", "json_schema": {}})) == [
        "response_format json_schema"]
    assert bare.missing_for(_request(response_format={"type": "text"})) == []
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    assert bare.missing_for(_request(messages=image)) == ["images"]
    assert bare.missing_for(_request(max_tokens=200))[0].startswith("context length")
    assert Capabilities().missing_for(_request(tools=TOOLS, max_tokens=10**5)) == []


def test_prompt_estimate_counts_each_messages_template():
    one = estimated_prompt_tokens(_request())
    two = estimated_prompt_tokens(_request(messages=[{"role": "user", "content": "hi"}] * 2))
    assert two > one >= 1


def test_learned_overhead_never_undercharges_what_was_seen():
    overhead = PromptOverhead()
    request = _request()
    assert overhead.estimate(request) == estimated_prompt_tokens(request)
    overhead.observe(request, 38)  # SmolLM2's template adds a default system prompt
    overhead.observe(request, 20)
    assert overhead.estimate(request) == 38
    chunk = overhead.usage_chunk(request, completion_tokens=4)
    assert chunk["usage"] == {"prompt_tokens": 38, "completion_tokens": 4, "total_tokens": 42, "estimated": True}


def test_text_completions_several_choices_and_reasoning_are_needs_too():
    bare = Capabilities()
    text = TextCompletionRequest.model_validate({"model": "auto", "prompt": "hi"}).as_chat()
    assert bare.missing_for(text) == ["text completions (/v1/completions)"]
    assert bare.missing_for(_request(n=3)) == ["n=3 (several choices)"]
    assert bare.missing_for(_request(n=1)) == []
    reasoning = ["reasoning (reasoning_effort, thinking_token_budget)"]
    assert bare.missing_for(_request(reasoning_effort="medium")) == reasoning
    assert bare.missing_for(_request(thinking_token_budget=100)) != []
    assert bare.missing_for(_request(reasoning_effort="none", thinking_token_budget=0)) == []  # asks for no thinking
    full = Capabilities(text_completion=True, choices=True, reasoning=True)
    assert full.missing_for(text) == full.missing_for(_request(n=3, reasoning_effort="high")) == []


def test_a_tiers_reasoning_and_text_capabilities_come_from_its_backend_and_config():
    from tierwise.config import settings_from_dict
    from tierwise.tiers.registry import build_tier

    def tier(**extra):
        config = settings_from_dict({"tiers": [{"name": "t", "location": "cloud", "backend": "openai",
                                                "base_url": "http://x/v1", "model": "m", **extra}]}).tiers[0]
        return build_tier(config).capabilities

    assert tier().text_completion and tier().choices and not tier().reasoning
    assert tier(capabilities={"reasoning": True}).reasoning
    llama_server = tier(dialect="llama_cpp")
    assert llama_server.text_completion and not llama_server.choices  # it answers one choice whatever n says
    assert not tier(capabilities={"text_completion": False}).text_completion
