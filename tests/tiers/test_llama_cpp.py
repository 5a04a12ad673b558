"""The in-process llama.cpp tier on a tiny random-weight GGUF: streaming, the worker pool, cancellation, crashes.

What a real model says is in test_llama_cpp_real.py; here the answers are gibberish and the mechanics are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from tests.conftest import needs_llama_cpp
from tierwise.config import settings_from_dict
from tierwise.errors import ConfigError
from tierwise.protocol import ChatCompletionRequest
from tierwise.tiers import llama_cpp
from tierwise.tiers.base import Tier, TierRejected, TierUnavailable
from tierwise.tiers.llama_cpp import LlamaCppTier, _ToolCallDeltas
from tierwise.tiers.registry import build_tier

pytestmark = pytest.mark.slow
T = TypeVar("T")

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
EMAIL = {"type": "function", "function": {"name": "send_email", "parameters": {
    "type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]}}}


def request(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "device", "messages": [{"role": "user", "content": "hello world"}], **fields})


def device_config(path: Path, **extra: Any) -> Any:
    return settings_from_dict({"tiers": [{"name": "device", "location": "device", "backend": "llama_cpp",
                                          "model_path": str(path), "n_ctx": 512, **extra}]}).tiers[0]


class TierOnALoop:
    """A started tier and the one event loop it lives on, shared by tests (each start costs a process)."""

    def __init__(self, runner: asyncio.Runner, tier: Tier) -> None:
        self.runner = runner
        self.tier = tier

    def run(self, scenario: Callable[[Tier], Awaitable[T]]) -> T:
        return self.runner.run(scenario(self.tier))  # type: ignore[arg-type]

    def collect(self, req: ChatCompletionRequest) -> list[dict[str, Any]]:
        async def scenario(tier: Tier) -> list[dict[str, Any]]:
            return [chunk async for chunk in tier.generate(req)]

        return self.run(scenario)

    def wait_until_healthy(self, timeout_s: float = 30.0) -> None:
        async def scenario(tier: Tier) -> None:
            deadline = time.monotonic() + timeout_s
            while not (await tier.health()).healthy:
                assert time.monotonic() < deadline, "the tier did not come back"
                await asyncio.sleep(0.05)

        self.run(scenario)


@contextlib.contextmanager
def started(config: Any) -> Iterator[TierOnALoop]:
    needs_llama_cpp()
    with asyncio.Runner() as runner:
        tier = build_tier(config)
        runner.run(tier.start())
        try:
            yield TierOnALoop(runner, tier)
        finally:
            runner.run(tier.aclose())


@pytest.fixture(scope="module")
def device(tiny_gguf: Path) -> Iterator[TierOnALoop]:
    with started(device_config(tiny_gguf)) as on_loop:
        yield on_loop


def text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---- answers -------------------------------------------------------------------------------------------------


def test_streams_chunks_named_after_the_model_then_usage_as_llama_cpp_counts_it(device, tiny_gguf):
    from llama_cpp import Llama

    chunks = device.collect(request(max_tokens=12, seed=1))
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert 1 <= len(content) <= 12
    assert {c["model"] for c in chunks} == {"tiny-llama"}  # the file's stem, never its path
    assert len({c["id"] for c in chunks}) == 1
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert len(content) <= usage["completion_tokens"] <= 12
    reference = Llama(model_path=str(tiny_gguf), n_ctx=512, verbose=False)
    try:
        counted = reference.create_chat_completion(messages=[{"role": "user", "content": "hello world"}],
                                                   max_tokens=1)["usage"]["prompt_tokens"]
    finally:
        reference.close()
    assert usage["prompt_tokens"] == counted


def test_same_seed_same_text_and_stop_cuts(device):
    first = text(device.collect(request(max_tokens=24, seed=7, temperature=1.0)))
    again = text(device.collect(request(max_tokens=24, seed=7, temperature=1.0)))
    assert first == again and len(first) > 4
    stop = first[len(first) // 2 : len(first) // 2 + 2]
    cut = text(device.collect(request(max_tokens=24, seed=7, temperature=1.0, stop=[stop])))
    assert stop not in cut and first.startswith(cut)


def test_logprobs_when_asked_of_a_model_that_keeps_every_positions_logits(tiny_gguf: Path) -> None:
    with started(device_config(tiny_gguf, logits_all=True)) as device:
        chunks = device.collect(request(max_tokens=5, seed=3, logprobs=True, top_logprobs=2))
    entries = [e for c in chunks if c["choices"] and c["choices"][0].get("logprobs")
               for e in c["choices"][0]["logprobs"]["content"]]
    assert entries, "no logprobs came back"
    assert all(isinstance(e["logprob"], float) and e["logprob"] <= 0 for e in entries)
    assert all(len(e["top_logprobs"]) == 2 for e in entries)


def test_concurrent_requests_wait_in_line_for_the_one_worker(device):
    async def both(tier: Tier) -> list[str]:
        async def one(seed: int) -> str:
            return text([c async for c in tier.generate(request(max_tokens=8, seed=seed, temperature=1.0))])
        return list(await asyncio.gather(one(5), one(5)))

    a, b = device.run(both)
    assert a == b and a


def test_health_counts_busy_workers(device):
    (pid,) = device.tier.worker_pids

    async def scenario(tier: Tier) -> tuple[str, str]:
        os.kill(pid, signal.SIGSTOP)  # holds the request on the worker while health is asked
        try:
            answer = asyncio.ensure_future(_all(tier.generate(request(max_tokens=4, temperature=0))))
            await asyncio.sleep(0.1)
            during = (await tier.health()).detail
        finally:
            os.kill(pid, signal.SIGCONT)
        await answer
        return during, (await tier.health()).detail

    during, after = device.run(scenario)
    assert "1/1 busy" in during and "0/1 busy" in after


# ---- configuration -------------------------------------------------------------------------------------------


def test_missing_model_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        asyncio.run(build_tier(device_config(tmp_path / "none.gguf")).start())


def test_a_file_that_is_not_gguf_is_a_config_error_that_names_it(tmp_path):
    needs_llama_cpp()
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    with pytest.raises(ConfigError, match=r"tier 'device': cannot load .*broken\.gguf"):
        asyncio.run(build_tier(device_config(bad)).start())


def test_the_model_name_is_the_configured_one_or_the_file_stem(tiny_gguf):
    assert LlamaCppTier(device_config(tiny_gguf)).model_name == "tiny-llama"
    assert LlamaCppTier(device_config(tiny_gguf, model="phone-model")).model_name == "phone-model"


def test_capabilities_follow_the_tool_handler_and_context(tiny_gguf):
    with_tools = LlamaCppTier(device_config(tiny_gguf)).capabilities
    assert with_tools.tools and with_tools.response_format and not with_tools.images
    assert with_tools.context_length == 512
    assert not LlamaCppTier(device_config(tiny_gguf, tools_chat_format=None)).capabilities.tools


# ---- tools: what is sent to llama-cpp-python's handler -------------------------------------------------------


def arguments(tiny_gguf: Path, **fields: Any) -> tuple[dict[str, Any], str | None]:
    return LlamaCppTier(device_config(tiny_gguf))._arguments(request(**fields))


def test_tools_go_to_the_tool_handler_with_auto_as_openai_defaults(tiny_gguf):
    sent, handler = arguments(tiny_gguf, tools=[WEATHER])
    assert handler == "chatml-function-calling"
    assert sent["tool_choice"] == "auto"  # the handler's own default would be "none"
    assert sent["messages"][0] == {"role": "system", "content": ""}  # where the handler lists the tools


def test_tool_choice_none_sends_no_tools(tiny_gguf):
    sent, handler = arguments(tiny_gguf, tools=[WEATHER], tool_choice="none")
    assert handler is None and "tools" not in sent and "tool_choice" not in sent


def test_required_with_one_tool_forces_that_tool(tiny_gguf):
    sent, _ = arguments(tiny_gguf, tools=[WEATHER], tool_choice="required")
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_required_with_several_tools_is_rejected_with_a_400(tiny_gguf):
    with pytest.raises(TierRejected, match="'required' with 2 tools") as err:
        arguments(tiny_gguf, tools=[WEATHER, EMAIL], tool_choice="required")
    assert err.value.status == 400


def test_a_tool_choice_naming_no_offered_tool_is_rejected(tiny_gguf):
    with pytest.raises(TierRejected, match="not among the tools"):
        arguments(tiny_gguf, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})


def test_tool_results_become_user_turns_the_template_renders(tiny_gguf):
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in"}, {"type": "text", "text": "Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees"},
    ]
    sent, _ = arguments(tiny_gguf, messages=history, tools=[WEATHER])
    assert sent["messages"][1]["content"] == "Weather in\nParis?"
    assert sent["messages"][2]["content"] == ""  # the llama.cpp dialect: no null content
    assert sent["messages"][3] == {"role": "user", "content": "Result of get_weather: 22 degrees"}
    assert len(sent["messages"]) == 4  # a system turn was there already


def test_tool_call_deltas_carry_id_type_and_name_once():
    tidy = _ToolCallDeltas()

    def chunk(arguments: str) -> dict[str, Any]:
        call = {"index": 0, "id": "call_x", "type": "function", "function": {"name": "f", "arguments": arguments}}
        return {"choices": [{"index": 0, "delta": {"role": None, "content": None, "tool_calls": [call],
                                                   "function_call": {"name": "f", "arguments": arguments}}}]}

    first, second = tidy.tidy(chunk("{")), tidy.tidy(chunk("}"))
    assert first["choices"][0]["delta"] == {"tool_calls": [
        {"index": 0, "id": "call_x", "type": "function", "function": {"name": "f", "arguments": "{"}}]}
    assert second["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}


# ---- a client that goes away ---------------------------------------------------------------------------------


def test_a_stream_cancelled_after_one_chunk_frees_the_worker(device):
    async def scenario(tier: Tier) -> str:
        stream = tier.generate(request(max_tokens=400, temperature=0))
        first = asyncio.Event()

        async def consume() -> None:
            await anext(stream)
            first.set()
            async for _ in stream:
                await asyncio.sleep(0.01)

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()  # cancelled again while cleaning up, as cancel scopes do
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stream.aclose()  # type: ignore[attr-defined]
        later = tier.generate(request(max_tokens=4, seed=1))
        return text(await asyncio.wait_for(_all(later), timeout=5))

    assert device.run(scenario)


def test_a_stream_abandoned_in_a_cancelled_anyio_scope_frees_the_worker(device):
    async def scenario(tier: Tier) -> str:
        with anyio.CancelScope() as scope:
            stream = tier.generate(request(max_tokens=400, temperature=0))
            await anext(stream)
            scope.cancel()  # from here on every await in the scope is cancelled, the cleanup's included
            try:
                await asyncio.sleep(1)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        later = tier.generate(request(max_tokens=4, seed=1))
        return text(await asyncio.wait_for(_all(later), timeout=5))

    assert device.run(scenario)


async def _all(stream: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


# ---- a worker that dies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("crash", [signal.SIGKILL, signal.SIGSEGV])  # SIGSEGV: what a bug in llama.cpp does
def test_a_worker_that_dies_while_idle_is_logged_reported_and_reloaded(device, caplog, crash):
    (pid,) = device.tier.worker_pids

    async def scenario(tier: Tier) -> str:
        os.kill(pid, crash)
        deadline = time.monotonic() + 5
        while (await tier.health()).healthy:
            assert time.monotonic() < deadline, "the death went unnoticed"
            await asyncio.sleep(0.02)
        with pytest.raises(TierUnavailable, match="no model worker alive"):
            await anext(tier.generate(request(max_tokens=4)))
        return (await tier.health()).detail

    with caplog.at_level(logging.ERROR, logger="tierwise.tiers"):
        assert "reloading" in device.run(scenario)
    assert any(r.levelno == logging.ERROR and crash.name in r.getMessage() and str(pid) in r.getMessage()
               for r in caplog.records)
    device.wait_until_healthy()
    assert text(device.collect(request(max_tokens=4, seed=1)))
    assert device.tier.worker_pids != [pid] and gone(pid)


def test_a_worker_killed_before_its_first_chunk_makes_the_request_unavailable(device):
    (pid,) = device.tier.worker_pids

    async def scenario(tier: Tier) -> None:
        os.kill(pid, signal.SIGSTOP)  # frozen: the request reaches it and nothing comes back
        stream = tier.generate(request(max_tokens=4))
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.3)
        assert not first.done()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(TierUnavailable, match="SIGKILL"):
            await first

    device.run(scenario)
    device.wait_until_healthy()
    assert text(device.collect(request(max_tokens=4, seed=1)))


def test_aclose_stops_every_worker_and_kills_one_that_hangs(tiny_gguf, monkeypatch):
    monkeypatch.setattr(llama_cpp, "STOP_TIMEOUT_S", 0.5)
    with started(device_config(tiny_gguf, max_concurrent=2)) as on_loop:
        pids = on_loop.tier.worker_pids
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGSTOP)  # it cannot read the request to close
        began = time.monotonic()
        on_loop.runner.run(on_loop.tier.aclose())
        assert time.monotonic() - began < 4.5  # the patched 0.5 s, then a kill; not the default 5 s
    assert all(gone(pid) for pid in pids)
