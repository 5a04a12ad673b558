"""OpenAI request → backend dialects: the one place parameters are renamed, mapped or dropped."""

from __future__ import annotations

import pytest

from tierwise.errors import ConfigError
from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest
from tierwise.tiers.base import TierRejected
from tierwise.tiers.translate import (
    DIALECTS,
    dialect_named,
    http_payload,
    llama_cpp_arguments,
    llama_cpp_text_arguments,
    text_payload,
)

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def _request(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields})


@pytest.mark.parametrize(("dialect", "field"), [("vllm", "max_tokens"), ("llama_cpp", "max_tokens"),
                                                ("openai", "max_completion_tokens")])
def test_the_output_limit_goes_in_the_one_field_the_server_reads(dialect, field):
    for sent in ({"max_completion_tokens": 5}, {"max_tokens": 5}):
        payload = http_payload(_request(**sent), DIALECTS[dialect], model="m")
        assert payload[field] == 5
        assert {"max_tokens", "max_completion_tokens"} - {field} & payload.keys() == set()


def test_no_limit_sent_when_the_client_set_none():
    payload = http_payload(_request(), DIALECTS["llama_cpp"], model="m")
    assert "max_tokens" not in payload and "max_completion_tokens" not in payload


def test_llama_cpp_dialect_maps_what_its_servers_reject():
    request = _request(
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "add"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "5"},
        ],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
    )
    payload = http_payload(request, DIALECTS["llama_cpp"], model="m")
    assert [m["role"] for m in payload["messages"]] == ["system", "user", "assistant", "tool"]
    assert payload["messages"][2]["content"] == "" and payload["messages"][2]["tool_calls"][0]["id"] == "c1"
    assert payload["messages"][3]["tool_call_id"] == "c1"
    assert payload["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_native_dialects_keep_what_the_client_sent():
    request = _request(messages=[{"role": "developer", "content": "x"},
                                 {"role": "assistant", "content": None, "tool_calls": []}],
                       response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
                       repetition_penalty=1.1)
    payload = http_payload(request, DIALECTS["vllm"], model="served-name")
    assert payload["messages"][0]["role"] == "developer"
    assert "content" in payload["messages"][1] and payload["messages"][1]["content"] is None  # not dropped
    assert payload["response_format"]["type"] == "json_schema"
    assert payload["repetition_penalty"] == 1.1 and payload["model"] == "served-name"


def test_streams_ask_for_usage_and_complete_answers_do_not_stream():
    assert http_payload(_request(stream=True), DIALECTS["vllm"], model="m")["stream_options"] == {
        "include_usage": True}
    payload = http_payload(_request(stream_options={"include_usage": True}), DIALECTS["vllm"], model="m")
    assert payload["stream"] is False and "stream_options" not in payload


def test_llama_cpp_arguments_carry_limits_tools_and_formats():
    tools = [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]
    arguments = llama_cpp_arguments(_request(
        max_completion_tokens=7, stop="\n", tools=tools, tool_choice="auto",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
        messages=[{"role": "developer", "content": "x"}, {"role": "user", "content": "hi"}]))
    assert arguments["max_tokens"] == 7 and arguments["stop"] == ["\n"] and arguments["stream"] is True
    assert arguments["tools"] == tools and arguments["tool_choice"] == "auto"
    assert arguments["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert arguments["messages"][0]["role"] == "system"
    assert arguments["temperature"] == 1.0 and arguments["top_p"] == 1.0  # OpenAI's defaults


def test_llama_cpp_arguments_come_fully_mapped_for_the_tool_handler():
    tools = [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]
    history = [
        {"role": "user", "content": [{"type": "text", "text": "add"}, {"type": "text", "text": "2 and 3"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "5"},
    ]
    arguments = llama_cpp_arguments(_request(messages=history, tools=tools), tool_handler="chatml-function-calling")
    assert arguments["messages"] == [
        {"role": "system", "content": ""}, {"role": "user", "content": "add\n2 and 3"},
        {**history[1], "content": ""}, {"role": "user", "content": "Result of f: 5"}]
    assert arguments["tool_choice"] == "auto"  # OpenAI's default, not the handler's "none"
    plain = llama_cpp_arguments(_request(tools=tools, tool_choice="none"), tool_handler="chatml-function-calling")
    assert "tools" not in plain and "tool_choice" not in plain


def test_llama_cpp_arguments_reject_what_the_tool_handler_cannot_honour():
    tools = [{"type": "function", "function": {"name": n}} for n in ("f", "g")]
    with pytest.raises(TierRejected, match="tier 'device' cannot honour tool_choice 'required' with 2 tools") as err:
        llama_cpp_arguments(_request(tools=tools, tool_choice="required"), tool_handler="x", tier="device")
    assert err.value.status == 400


def test_an_unknown_dialect_names_the_known_ones():
    with pytest.raises(ConfigError, match="llama_cpp"):
        dialect_named("llamacpp")


# ---- reasoning models ------------------------------------------------------------------------------------------


def test_reasoning_effort_and_a_thinking_budget_in_each_dialects_terms():
    asked = _request(reasoning_effort="high", thinking_token_budget=512)
    openai = http_payload(asked, DIALECTS["openai"], model="m")
    assert openai["reasoning_effort"] == "high" and "thinking_token_budget" not in openai  # OpenAI has no budget
    assert "chat_template_kwargs" not in openai
    vllm = http_payload(asked, DIALECTS["vllm"], model="m")
    assert vllm["reasoning_effort"] == "high" and vllm["thinking_token_budget"] == 512  # vLLM's hard cap
    assert vllm["chat_template_kwargs"] == {"thinking_budget": 512}  # SGLang's / Qwen3's template variable
    llama = http_payload(asked, DIALECTS["llama_cpp"], model="m")
    assert {"reasoning_effort", "thinking_token_budget", "chat_template_kwargs"} & llama.keys() == set()


def test_effort_none_switches_a_hybrid_models_thinking_off_unless_the_client_said_otherwise():
    off = http_payload(_request(reasoning_effort="none"), DIALECTS["vllm"], model="m")
    assert off["chat_template_kwargs"] == {"enable_thinking": False} and off["reasoning_effort"] == "none"
    kept = http_payload(_request(reasoning_effort="none", chat_template_kwargs={"enable_thinking": True, "x": 1}),
                        DIALECTS["vllm"], model="m")
    assert kept["chat_template_kwargs"] == {"enable_thinking": True, "x": 1}
    assert "chat_template_kwargs" not in http_payload(_request(), DIALECTS["vllm"], model="m")


def test_the_device_tier_never_sees_reasoning_fields():
    arguments = llama_cpp_arguments(_request(reasoning_effort="low", thinking_token_budget=10))
    assert {"reasoning_effort", "thinking_token_budget"} & arguments.keys() == set()


# ---- text completions ------------------------------------------------------------------------------------------


def test_a_text_payload_sends_the_prompt_as_one_string_and_leaves_echo_to_the_gateway():
    request = TextCompletionRequest.model_validate(
        {"model": "auto", "prompt": ["Once upon"], "echo": True, "n": 2, "logprobs": 1, "repetition_penalty": 1.1,
         "stream": True})
    payload = text_payload(request, DIALECTS["vllm"], model="m")
    assert payload["prompt"] == "Once upon" and payload["model"] == "m" and payload["max_tokens"] == 16
    assert payload["n"] == 2 and payload["logprobs"] == 1 and payload["repetition_penalty"] == 1.1
    assert "echo" not in payload and payload["stream_options"] == {"include_usage": True}


def test_llama_cpp_text_arguments_use_openais_sampling_defaults():
    request = TextCompletionRequest.model_validate({"model": "auto", "prompt": "Hi", "stop": "\n", "seed": 3})
    arguments = llama_cpp_text_arguments(request)
    assert arguments == {"prompt": "Hi", "max_tokens": 16, "temperature": 1.0, "top_p": 1.0, "stop": ["\n"],
                         "stream": True, "seed": 3}
