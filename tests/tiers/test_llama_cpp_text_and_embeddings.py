"""Legacy text completions and embeddings on the in-process llama.cpp tier (tiny random-weight GGUF): the raw
prompt through `create_completion` in the worker, streamed as `text_completion` chunks and cancelled within a token
like chat; mean-pooled embeddings from a second context in the same worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.tiers.test_llama_cpp import TierOnALoop, device_config, started
from tierwise.protocol import TextCompletionRequest
from tierwise.tiers.base import Tier

pytestmark = pytest.mark.slow
PROMPT = "hello world"


def text_request(**fields: Any) -> TextCompletionRequest:
    return TextCompletionRequest.model_validate({"model": "device", "prompt": PROMPT, **fields})


@pytest.fixture(scope="module")
def device(tiny_gguf: Path) -> Iterator[TierOnALoop]:
    with started(device_config(tiny_gguf, embeddings=True, logits_all=True)) as on_loop:  # logprobs asked
        yield on_loop


def collect(device: TierOnALoop, request: TextCompletionRequest) -> list[dict[str, Any]]:
    async def scenario(tier: Tier) -> list[dict[str, Any]]:
        return [chunk async for chunk in tier.complete_text(request)]

    return device.run(scenario)


def joined(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["text"] for c in chunks if c["choices"])


def test_the_raw_prompt_is_completed_as_llama_cpp_completes_it(device, tiny_gguf):
    from llama_cpp import Llama

    chunks = collect(device, text_request(max_tokens=12, temperature=0))
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert {c["model"] for c in chunks} == {"tiny-llama"} and len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"] == [] and chunks[-2]["choices"][0]["finish_reason"] in {"stop", "length"}
    reference = Llama(model_path=str(tiny_gguf), n_ctx=512, verbose=False)
    try:
        expected = reference.create_completion(PROMPT, max_tokens=12, temperature=0)
    finally:
        reference.close()
    assert joined(chunks) == expected["choices"][0]["text"]  # no chat template around the prompt
    assert chunks[-1]["usage"]["prompt_tokens"] == expected["usage"]["prompt_tokens"]


def test_the_token_limit_stop_sequences_and_logprobs_are_honoured(device):
    long = joined(collect(device, text_request(max_tokens=24, seed=7, temperature=1.0)))
    assert long == joined(collect(device, text_request(max_tokens=24, seed=7, temperature=1.0)))
    stop = long[len(long) // 2 : len(long) // 2 + 2]
    cut = joined(collect(device, text_request(max_tokens=24, seed=7, temperature=1.0, stop=[stop])))
    assert stop not in cut and long.startswith(cut)
    limited = collect(device, text_request(max_tokens=3, temperature=0, logprobs=2))
    assert limited[-1]["usage"]["completion_tokens"] <= 3
    tops = [c["choices"][0]["logprobs"] for c in limited if c["choices"] and c["choices"][0]["logprobs"]]
    assert tops and all(len(lp["top_logprobs"][0]) == 2 for lp in tops)


def test_a_text_stream_cancelled_after_one_chunk_frees_the_worker(device):
    async def scenario(tier: Tier) -> str:
        stream = tier.complete_text(text_request(max_tokens=400, temperature=0))
        await anext(stream)
        task = asyncio.create_task(anext(stream))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stream.aclose()  # type: ignore[attr-defined]
        later = tier.complete_text(text_request(max_tokens=4, seed=1))
        chunks = await asyncio.wait_for(_all(later), timeout=5)  # the worker is free again at once
        return joined(chunks)

    assert device.run(scenario)


async def _all(stream: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


def test_embeddings_are_llama_cpps_mean_pooled_vectors_and_the_worker_still_chats(device, tiny_gguf):
    from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

    async def scenario(tier: Tier) -> tuple[list[list[float]], int]:
        return await tier.embed(["hello world", "hi"])

    vectors, tokens = device.run(scenario)
    reference = Llama(model_path=str(tiny_gguf), embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN,
                      n_ctx=512, n_batch=512, n_ubatch=512, verbose=False)
    try:
        expected = reference.create_embedding(["hello world", "hi"])
    finally:
        reference.close()
    assert np.allclose(vectors, [d["embedding"] for d in expected["data"]], atol=1e-5)
    assert tokens == expected["usage"]["prompt_tokens"] and device.tier.embedding_model == "tiny-llama"
    assert joined(collect(device, text_request(max_tokens=4, seed=1)))  # the chat/text model is untouched


def test_embedding_dimensions_are_refused_and_a_tier_without_embeddings_says_so(device, tiny_gguf):
    from tierwise.tiers.base import TierRejected
    from tierwise.tiers.llama_cpp import LlamaCppTier

    async def scenario(tier: Tier) -> None:
        await tier.embed(["hi"], dimensions=8)

    with pytest.raises(TierRejected, match="dimensions"):
        device.run(scenario)
    assert LlamaCppTier(device_config(tiny_gguf)).embedding_model is None
