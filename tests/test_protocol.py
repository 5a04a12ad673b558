import pytest
from pydantic import ValidationError

from tierwise.protocol import ChatCompletionRequest, CompletionBuilder


def _chunk(delta, finish=None, **extra):
    return {"id": "c", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]}


def test_builder_concatenates_known_and_unknown_string_fields():
    b = CompletionBuilder()
    b.add(_chunk({"role": "assistant", "content": ""}))
    b.add(_chunk({"reasoning_content": "think "}))
    b.add(_chunk({"reasoning_content": "hard", "content": "4"}))
    b.add(_chunk({}, "stop"))
    b.add({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    out = b.build(completion_id="chatcmpl-1", model="m")
    message = out["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "4", "reasoning_content": "think hard"}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"]["completion_tokens"] == 2
    assert out["object"] == "chat.completion" and out["id"] == "chatcmpl-1"


def test_builder_merges_tool_calls_and_logprobs():
    b = CompletionBuilder()
    b.add(_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": "get", "arguments": '{"a":'}}]},
                 logprobs={"content": [{"token": "a", "logprob": -0.5}]}))
    b.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]},
                 logprobs={"content": [{"token": "b", "logprob": -1.5}]}))
    choice = b.build(completion_id="x", model="m")["choices"][0]
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"] == {"name": "get", "arguments": '{"a": 1}'}
    assert [t["logprob"] for t in choice["logprobs"]["content"]] == [-0.5, -1.5]


def test_request_keeps_unknown_fields_and_rejects_bad_ones():
    req = ChatCompletionRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
         "repetition_penalty": 1.1}
    )
    assert req.model_dump(exclude_none=True)["repetition_penalty"] == 1.1
    assert req.last_user_text() == "hi"
    for bad in ({"max_tokens": -1}, {"temperature": 3}, {"n": 0}, {"n": 129}, {"messages": []},
                {"stop": list("abcde")}):
        with pytest.raises(ValidationError):
            ChatCompletionRequest.model_validate(
                {"model": "auto", "messages": [{"role": "user", "content": "x"}], **bad}
            )
