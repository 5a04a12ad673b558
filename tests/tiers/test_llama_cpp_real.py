"""The device tier on a real model (SmolLM2-135M-Instruct, Q4_1): answers, tool calls, JSON, and the worker's
behaviour when a client leaves or the worker dies mid-answer, where a random-weight model is too fast to tell."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from tests.tiers.test_llama_cpp import EMAIL, WEATHER, TierOnALoop, device_config, started, text
from tierwise.bundled import smollm2_path
from tierwise.errors import ConfigError
from tierwise.protocol import ChatCompletionRequest
from tierwise.tiers.base import Tier, TierStreamBroken, TierUnavailable

pytestmark = pytest.mark.slow

# At temperature 0 SmolLM2 writes this story until max_tokens (1500 tokens took 49 s here): an answer that
# only stops early if cancellation works.
ENDLESS = [{"role": "user", "content": "Write a very long story about a dragon, at least 2000 words."}]


def request(messages: list[dict[str, Any]], **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "device", "messages": messages, "temperature": 0,
                                                 **fields})


def ask(question: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def smollm2() -> Iterator[TierOnALoop]:
    try:
        path = smollm2_path()
    except ConfigError as err:
        pytest.skip(str(err))
    # logits_all (for logprobs, not tested here) also computes every prompt position's logits: seconds per prompt.
    with started(device_config(path, n_ctx=2048, logits_all=False)) as on_loop:
        yield on_loop


def final(chunks: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Any:
    """The chunks added up by the openai SDK, as a client would: the wire format has to be right for this."""
    state = ChatCompletionStreamState(**({"input_tools": tools} if tools else {}))
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.get_final_completion()


def test_answers_2_plus_3_with_5_and_counts_the_prompt_as_llama_cpp_does(smollm2):
    from llama_cpp import Llama

    chunks = smollm2.collect(request(ask("What is 2 + 3?"), max_tokens=20))
    assert "5" in text(chunks)
    assert {c["model"] for c in chunks} == {"SmolLM2-135M-Instruct.Q4_1"}
    reference = Llama(model_path=str(smollm2_path()), n_ctx=2048, verbose=False)
    try:
        counted = reference.create_chat_completion(messages=ask("What is 2 + 3?"), max_tokens=1)["usage"]
    finally:
        reference.close()
    assert chunks[-1]["usage"]["prompt_tokens"] == counted["prompt_tokens"]
    assert chunks[-1]["usage"]["completion_tokens"] >= len(text(chunks).split())


def test_a_forced_tool_call_streams_openai_deltas_with_json_arguments(smollm2):
    forced = {"type": "function", "function": {"name": "get_weather"}}
    chunks = smollm2.collect(request(ask("What is the weather in Paris?"), tools=[WEATHER], tool_choice=forced,
                                     max_tokens=40))
    choice = final(chunks, [WEATHER]).choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id and call.function.name == "get_weather"  # once, not once per delta
    assert set(json.loads(call.function.arguments)) == {"city"}
    named = [c for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert len(named) > 1 and all("id" not in c["choices"][0]["delta"]["tool_calls"][0] for c in named[1:])


def test_auto_tool_choice_calls_the_tool_or_answers_in_words(smollm2):
    called = final(smollm2.collect(request(ask("What is the weather in Paris?"), tools=[WEATHER], max_tokens=40)))
    assert called.choices[0].finish_reason == "tool_calls"
    assert json.loads(called.choices[0].message.tool_calls[0].function.arguments)["city"] == "Paris"
    words = final(smollm2.collect(request(ask("Say hello to me."), tools=[WEATHER], max_tokens=40)))
    assert words.choices[0].message.content and not words.choices[0].message.tool_calls


def test_a_tool_result_reaches_the_model_on_the_next_turn(smollm2):
    history = [
        *ask("Look up the weather in Paris and email it to me."),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees and sunny"},
    ]
    answer = final(smollm2.collect(request(history, tools=[WEATHER, EMAIL], max_tokens=60)))
    (call,) = answer.choices[0].message.tool_calls
    assert call.function.name == "send_email"
    assert "22 degrees" in json.loads(call.function.arguments)["body"]


def test_a_json_schema_response_format_gives_json_with_the_required_keys(smollm2):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    chunks = smollm2.collect(request(ask("Give me a person as JSON with name and age."),
                                     response_format=response_format, max_tokens=60))
    person = json.loads(text(chunks))
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


@pytest.mark.parametrize("leave", ["cancel the task collecting the answer", "close the stream"])
def test_a_request_whose_client_leaves_stops_generating_within_a_token(smollm2, leave):
    async def scenario(tier: Tier) -> float:
        stream = tier.generate(request(ENDLESS, max_tokens=2000))
        if leave == "close the stream":  # a streaming client that disconnects
            await anext(stream)
            await stream.aclose()  # type: ignore[attr-defined]
        else:  # a non-streaming client that disconnects: the task waiting for the whole answer is cancelled
            first = asyncio.Event()

            async def collect() -> None:
                async for _ in stream:
                    first.set()

            task = asyncio.create_task(collect())
            await first.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = time.monotonic()
        await asyncio.wait_for(_all(tier.generate(request(ask("Hi"), max_tokens=1))), timeout=20)
        return time.monotonic() - left

    assert smollm2.run(scenario) < 15  # 2,000 tokens would keep the worker busy for 30 s or more here


async def _all(stream: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


def test_a_worker_killed_mid_answer_breaks_its_stream_fails_the_next_in_line_and_comes_back(smollm2, caplog):
    (pid,) = smollm2.tier.worker_pids

    async def scenario(tier: Tier) -> bool:
        stream = tier.generate(request(ENDLESS, max_tokens=2000))
        for _ in range(3):
            await anext(stream)
        waiting = asyncio.ensure_future(_all(tier.generate(request(ask("Hi"), max_tokens=1))))
        await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(TierStreamBroken, match="SIGKILL"):
            async for _ in stream:
                pass
        with pytest.raises(TierUnavailable):  # it fails over rather than wait for the reload
            await asyncio.wait_for(waiting, timeout=5)
        return (await tier.health()).healthy

    with caplog.at_level(logging.ERROR, logger="tierwise.tiers"):
        healthy_meanwhile = smollm2.run(scenario)
    assert not healthy_meanwhile
    assert [r for r in caplog.records if r.levelno == logging.ERROR and "SIGKILL" in r.getMessage()]
    smollm2.wait_until_healthy()
    assert "5" in text(smollm2.collect(request(ask("What is 2 + 3?"), max_tokens=20)))
