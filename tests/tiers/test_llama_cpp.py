"""The in-process llama.cpp tier on a tiny real GGUF model."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import needs_llama_cpp
from tierwise.config import settings_from_dict
from tierwise.errors import ConfigError
from tierwise.protocol import ChatCompletionRequest
from tierwise.tiers.registry import build_tier

pytestmark = pytest.mark.slow


def _request(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "device", "messages": [{"role": "user", "content": "hello world"}], **fields}
    )


class _TierInItsOwnLoop:
    """Each call runs in a fresh event loop with a freshly started tier (asyncio objects belong to one loop)."""

    def __init__(self, path):
        self.config = settings_from_dict({"tiers": [{"name": "device", "location": "device", "backend": "llama_cpp",
                                                     "model_path": str(path), "n_ctx": 512}]}).tiers[0]

    def run(self, scenario):
        async def main():
            tier = build_tier(self.config)
            await tier.start()
            try:
                return await scenario(tier)
            finally:
                await tier.aclose()

        return asyncio.run(main())


@pytest.fixture
def tier(tiny_gguf):
    needs_llama_cpp()
    return _TierInItsOwnLoop(tiny_gguf)


def _collect(tier, request):
    async def scenario(t):
        return [chunk async for chunk in t.generate(request)]

    return tier.run(scenario)


def _text(chunks) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_streams_chunks_then_usage(tier):
    chunks = _collect(tier, _request(max_tokens=12, seed=1))
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert 1 <= len(content) <= 12
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] == len(content)
    assert usage["prompt_tokens"] > 3  # the chat template wraps the message


def test_same_seed_same_text_and_stop_cuts(tier):
    first = _text(_collect(tier, _request(max_tokens=24, seed=7, temperature=1.0)))
    again = _text(_collect(tier, _request(max_tokens=24, seed=7, temperature=1.0)))
    assert first == again and len(first) > 4
    stop = first[len(first) // 2 : len(first) // 2 + 2]
    cut = _text(_collect(tier, _request(max_tokens=24, seed=7, temperature=1.0, stop=[stop])))
    assert stop not in cut and first.startswith(cut)


def test_logprobs_when_asked(tier):
    chunks = _collect(tier, _request(max_tokens=5, seed=3, logprobs=True, top_logprobs=2))
    entries = [e for c in chunks if c["choices"] and c["choices"][0].get("logprobs")
               for e in c["choices"][0]["logprobs"]["content"]]
    assert entries, "no logprobs came back"
    assert all(isinstance(e["logprob"], float) and e["logprob"] <= 0 for e in entries)
    assert all(len(e["top_logprobs"]) == 2 for e in entries)


def test_concurrent_requests_share_one_model_safely(tier):
    async def both(t):
        async def one(seed):
            return _text([c async for c in t.generate(_request(max_tokens=8, seed=seed, temperature=1.0))])
        return await asyncio.gather(one(5), one(5))

    a, b = tier.run(both)
    assert a == b and a


def test_missing_model_file_is_a_config_error(tmp_path):
    config = settings_from_dict({"tiers": [{"name": "device", "location": "device", "backend": "llama_cpp",
                                            "model_path": str(tmp_path / "none.gguf")}]}).tiers[0]
    with pytest.raises(ConfigError, match="does not exist"):
        asyncio.run(build_tier(config).start())
