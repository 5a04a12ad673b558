"""OpenAI request → backend dialects: the one place parameters are renamed, mapped or dropped."""

from __future__ import annotations

import pytest

from tierwise.errors import ConfigError
from tierwise.protocol import ChatCompletionRequest
from tierwise.tiers.base import TierRejected
from tierwise.tiers.translate import DIALECTS, dialect_named, http_payload, llama_cpp_arguments

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
